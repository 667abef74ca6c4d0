import Testing
@testable import RTC

@Suite struct StreamFramerTests {
    /// Frames of every awkward size, framed and concatenated as a TCP stream would carry them.
    let payloads: [[UInt8]] = [[], [1], Array(repeating: 7, count: 255), Array(repeating: 9, count: 256),
                               (0..<1200).map { UInt8(truncatingIfNeeded: $0) }, Array(repeating: 3, count: StreamFramer.maximumFrame)]

    var stream: [UInt8] { payloads.flatMap { p in p.withUnsafeBytes { StreamFramer.frame($0)! } } }

    func drain(_ framer: inout StreamFramer) -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let frame = framer.nextFrame({ Array($0) }) { out.append(frame) }
        return out
    }

    @Test func wholeStreamAtOnce() {
        var framer = StreamFramer()
        stream.withUnsafeBytes { framer.append($0) }
        #expect(drain(&framer) == payloads)
        #expect(framer.buffered == 0)
    }

    @Test func anySplitOfTheStreamGivesTheSameFrames() {
        let bytes = stream
        for chunk in [1, 2, 3, 7, 1000, 4096] {
            var framer = StreamFramer()
            var frames: [[UInt8]] = []
            var i = 0
            while i < bytes.count {
                let end = min(i + chunk, bytes.count)
                bytes[i..<end].withUnsafeBytes { framer.append($0) }
                frames += drain(&framer)
                i = end
            }
            #expect(frames == payloads, "chunk \(chunk)")
            #expect(framer.buffered == 0)
        }
    }

    @Test func aPartialFrameWaits() {
        var framer = StreamFramer()
        ([0x00, 0x05, 1, 2] as [UInt8]).withUnsafeBytes { framer.append($0) }
        #expect(framer.nextFrame { Array($0) } == nil)
        #expect(framer.buffered == 4)
        ([3, 4, 5, 0x00] as [UInt8]).withUnsafeBytes { framer.append($0) }
        #expect(framer.nextFrame { Array($0) } == [1, 2, 3, 4, 5])
        #expect(framer.nextFrame { Array($0) } == nil && framer.buffered == 1)
    }

    @Test func oversizePayloadsCannotBeFramed() {
        #expect(StreamFramer.header(length: 65_536) == nil)
        #expect(StreamFramer.header(length: -1) == nil)
        #expect(StreamFramer.header(length: 1200)! == (0x04, 0xB0))
    }
}
