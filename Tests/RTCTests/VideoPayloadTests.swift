import RTC
import Testing

@Suite struct VideoPayloadTests {
    func check(_ codec: VideoCodec, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { VideoPayload.isKeyframe(codec, $0) }
    }

    @Test func vp8DescriptorAndKeyframe() {
        // X=1 S=1 PID=0; I L T: 15-bit picture id 0x1234, TL0PICIDX 7, TID 1 with Y; then P=0 (keyframe).
        let key: [UInt8] = [0x90, 0xE0, 0x92, 0x34, 0x07, 0x60, 0x10, 0x02, 0x00]
        let d = key.withUnsafeBytes { VP8Descriptor($0) }
        #expect(d?.pictureID == 0x1234 && d?.pictureIDIs15Bit == true && d?.tl0PicIdx == 7)
        #expect(d?.temporalID == 1 && d?.layerSync == true && d?.isKeyframe == true && d?.length == 6)
        #expect(check(.vp8, key))
        var delta = key
        delta[6] = 0x11  // P=1
        #expect(!check(.vp8, delta))
        var continuation = key
        continuation[0] = 0x80  // not the start of a partition
        #expect(!check(.vp8, continuation))
        #expect([UInt8]([0x90, 0x80]).withUnsafeBytes { VP8Descriptor($0) } == nil)  // truncated
    }

    @Test func vp8RewriteKeepsTheWidths() {
        var bytes: [UInt8] = [0x90, 0xC0, 0x05, 0x07, 0x00]  // 7-bit picture id 5, TL0PICIDX 7
        let d = bytes.withUnsafeBytes { VP8Descriptor($0) }!
        bytes.withUnsafeMutableBytes { d.rewrite($0, pictureID: 0x1FF, tl0PicIdx: 9) }
        #expect(bytes == [0x90, 0xC0, 0x7F, 0x09, 0x00])
    }

    @Test func h264Vp9Av1Keyframes() {
        #expect(check(.h264, [0x65, 0x88]))  // IDR slice
        #expect(!check(.h264, [0x41, 0x9A]))  // non-IDR slice
        #expect(check(.h264, [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]))  // STAP-A with an SPS
        #expect(check(.h264, [0x7C, 0x85, 0x88]))  // FU-A start of an IDR
        #expect(!check(.h264, [0x7C, 0x05, 0x88]))  // FU-A continuation
        #expect(!check(.h264, [0x78, 0x00, 0x09, 0x67]))  // STAP-A overrunning the packet
        #expect(check(.vp9, [0x08, 0x00]))  // B, not P, no layers
        #expect(!check(.vp9, [0x48]))  // P set
        #expect(check(.vp9, [0xA8, 0x05, 0x00]))  // I (7-bit id), L with SID 0
        #expect(!check(.vp9, [0xA8, 0x05, 0x02]))  // SID 1
        #expect(check(.av1, [0x18]) && !check(.av1, [0x10]))
        #expect(!check(.vp8, []) && !check(.h264, []))
    }
}
