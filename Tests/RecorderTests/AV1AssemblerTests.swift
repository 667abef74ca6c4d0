@testable import RecorderCore
import Testing

func leb128(_ value: Int) -> [UInt8] {
    var out: [UInt8] = []
    LEB128.append(value, to: &out)
    return out
}

/// One OBU of a low-overhead bitstream: its header (one byte, or two with the extension) and payload.
struct TestOBU {
    var header: [UInt8]
    var payload: [UInt8]
    var type: UInt8 { header[0] >> 3 & 0x0F }
    /// As RTP carries it: no size field.
    var withoutSize: [UInt8] { [header[0] & ~0x02] + header.dropFirst() + payload }
    /// As files store it: a size field, in the shortest leb128.
    var withSize: [UInt8] { [header[0] | 0x02] + header.dropFirst() + leb128(payload.count) + payload }
}

/// The OBUs of a temporal unit whose OBUs all have size fields (as libaom writes into IVF).
func av1OBUs(_ unit: [UInt8]) -> [TestOBU] {
    var obus: [TestOBU] = []
    var o = 0
    while o < unit.count {
        let headerLength = unit[o] & 0x04 != 0 ? 2 : 1
        let header = Array(unit[o..<(o + headerLength)])
        o += headerLength
        var size = 0
        var shift = 0
        while true {
            let b = unit[o]
            o += 1
            size |= Int(b & 0x7F) << shift
            shift += 7
            if b & 0x80 == 0 { break }
        }
        obus.append(TestOBU(header: header, payload: Array(unit[o..<(o + size)])))
        o += size
    }
    return obus
}

/// AV1 packets as the AV1 RTP specification's senders make them: temporal delimiters left out,
/// OBUs without size fields as length-prefixed elements (W=0), split across packets with Y and Z,
/// N on the first packet of a temporal unit that starts a coded video sequence.
func av1Payloads(_ unit: [UInt8], mtu: Int = testMTU) -> [[UInt8]] {
    let obus = av1OBUs(unit).filter { $0.type != 2 }
    var packets: [[UInt8]] = []
    var body: [UInt8] = []
    var continues = false
    for obu in obus {
        var rest = ArraySlice(obu.withoutSize)
        while !rest.isEmpty {
            let space = mtu - 1 - body.count - 2
            if space < 1 {
                packets.append([continues ? 0x80 : 0] + body)
                body = []
                continues = false
                continue
            }
            let take = min(space, rest.count)
            body += leb128(take) + rest.prefix(take)
            rest = rest.dropFirst(take)
            if !rest.isEmpty {
                packets.append([(continues ? 0x80 : 0) | 0x40] + body)
                body = []
                continues = true
            }
        }
    }
    if !body.isEmpty { packets.append([continues ? 0x80 : 0] + body) }
    if obus.contains(where: { $0.type == 1 }) { packets[0][0] |= 0x08 }
    return packets
}

@Suite struct AV1AssemblerTests {
    func realStream() throws -> [UInt8] {
        try FFmpeg.encode(
            size: "320x240", frames: 20,
            ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-g", "10", "-b:v", "800k"], format: "ivf")
    }

    @Test func aRealStreamSurvivesReorderingAsTemporalUnitsWithoutDelimiters() throws {
        let ivf = try realStream()
        let source = ivfFrames(ivf)
        #expect(source.count == 20)
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        for (i, unit) in source.enumerated() { packets += sender.packets(frame: i, av1Payloads(unit)) }
        #expect(packets.count > source.count, "keyframes span several packets")
        var assembler = makeVideoFrameAssembler(.av1)
        let frames = transmit(packets, through: &assembler, seed: 5)
        let expected = source.map { av1OBUs($0).filter { $0.type != 2 }.flatMap(\.withSize) }
        #expect(frames.map(\.data) == expected)
        // libaom writes the shortest sizes, so that is each IVF temporal unit less its delimiter (12 00).
        #expect(source.allSatisfy { $0.starts(with: [0x12, 0x00]) })
        #expect(frames.map(\.data) == source.map { Array($0.dropFirst(2)) })
        #expect(frames.map(\.isKeyframe) == source.map { av1OBUs($0).contains { $0.type == 1 } })
        #expect(frames.count(where: \.isKeyframe) == 2)
        #expect(frames.first?.width == 320)
        #expect(frames.first?.height == 240)
        // The same av1C as ffmpeg writes into an MP4 of this stream.
        let reference = try FFmpeg.mp4ConfigurationBox(ivf, inputFormat: "ivf", box: "av1C")
        #expect(assembler.codecPrivate == reference)
        let av1C = try #require(assembler.codecPrivate)
        #expect(av1C[0] == 0x81)
        #expect(av1C[1] >> 5 == 0)  // Main profile
        #expect(av1C[2] == 0b0000_1100)  // 8-bit 4:2:0, colocated chroma position unknown
    }

    @Test func aLostFragmentDropsTheTemporalUnitAndFreezes() throws {
        let source = ivfFrames(try realStream())
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        var firstPacketOfUnit: [Int] = []
        for (i, unit) in source.enumerated() {
            firstPacketOfUnit.append(packets.count)
            packets += sender.packets(frame: i, av1Payloads(unit, mtu: 300))
        }
        // Frame 3 over several packets: lose its second.
        #expect(firstPacketOfUnit[4] - firstPacketOfUnit[3] >= 2)
        var assembler = makeVideoFrameAssembler(.av1)
        let frames = deliver(packets, dropping: [firstPacketOfUnit[3] + 1], to: &assembler)
        let kept = Array(0..<3) + Array(10..<source.count)
        #expect(frames.map(\.timestamp) == kept.map { sender.extendedTimestamp(frame: $0) })
    }

    @Test func aTemporalUnitMissingItsStartOrEndIsDropped() throws {
        let key = ivfFrames(try realStream())[0]
        let frame = TestOBU(header: [0x32], payload: [0x10] + Array(repeating: 5, count: 20))
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.av1)
        #expect(deliver(sender.packets(frame: 0, av1Payloads(key)), to: &assembler).count == 1)
        #expect(!assembler.needsKeyframe)
        // Z set on the first packet of a temporal unit: its start is missing.
        let orphan: [UInt8] = [0x80] + leb128(frame.withoutSize.count) + frame.withoutSize
        #expect(deliver(sender.packets(frame: 1, [orphan]), to: &assembler).isEmpty)
        #expect(assembler.needsKeyframe)
        #expect(deliver(sender.packets(frame: 2, av1Payloads(key)), to: &assembler).count == 1)
        #expect(!assembler.needsKeyframe)
        // Y set on a temporal unit's last packet: its end is missing.
        let unfinished: [UInt8] = [0x40] + leb128(frame.withoutSize.count) + frame.withoutSize
        #expect(deliver(sender.packets(frame: 3, [unfinished]), to: &assembler).isEmpty)
        #expect(assembler.needsKeyframe)
    }

    @Test func theLastElementMayGoWithoutALength() throws {
        let ivf = try realStream()
        let unit = ivfFrames(ivf)[0]
        let obus = av1OBUs(unit).filter { $0.type != 2 }
        // One packet, W = number of elements, the last one unprefixed; large MTU.
        var payload: [UInt8] = [UInt8(obus.count) << 4 | 0x08]
        for (i, obu) in obus.enumerated() {
            if i < obus.count - 1 { payload += leb128(obu.withoutSize.count) }
            payload += obu.withoutSize
        }
        #expect(obus.count <= 3)
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.av1)
        let frames = deliver(sender.packets(frame: 0, [payload]), to: &assembler)
        #expect(frames.map(\.data) == [obus.flatMap(\.withSize)])
        #expect(frames.first?.isKeyframe == true)
    }
}
