import RecorderCore
import Testing

private let ms: UInt64 = 1_000_000

private func packet(_ seq: UInt16, at arrival: UInt64 = 0) -> ReceivedPacket {
    ReceivedPacket(sequenceNumber: seq, timestamp: UInt32(seq) &* 3000, payload: [UInt8(truncatingIfNeeded: seq)], arrivalNanos: arrival)
}

private func sequences(_ released: [(packet: ReceivedPacket, lossBefore: Bool)]) -> [UInt16] {
    released.map(\.packet.sequenceNumber)
}

@Suite struct ReceivedPacketTests {
    @Test func copiesThePayloadAfterCSRCsExtensionAndPadding() {
        // V=2, P=1, X=1, CC=1; M=1, PT=111; seq 0x1234; ts 0x01020304; SSRC 0xAABBCCDD.
        var bytes: [UInt8] = [0xB1, 0xEF, 0x12, 0x34, 1, 2, 3, 4, 0xAA, 0xBB, 0xCC, 0xDD]
        bytes += [9, 9, 9, 9]  // one CSRC
        bytes += [0xBE, 0xDE, 0, 1, 0x10, 0x55, 0, 0]  // one-byte extension block, one word
        bytes += [7, 8, 9]  // payload
        bytes += [0, 0, 3]  // three bytes of padding
        let p = ReceivedPacket(bytes: bytes, arrivalNanos: 42)
        #expect(p?.sequenceNumber == 0x1234)
        #expect(p?.timestamp == 0x0102_0304)
        #expect(p?.ssrc == 0xAABB_CCDD)
        #expect(p?.marker == true)
        #expect(p?.payloadType == 111)
        #expect(p?.payload == [7, 8, 9])
        #expect(p?.arrivalNanos == 42)
    }

    @Test func rejectsMalformedPacketsWithoutTrapping() {
        let good: [UInt8] = [0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xAB]
        #expect(ReceivedPacket(bytes: good, arrivalNanos: 0)?.payload == [0xAB])
        #expect(ReceivedPacket(bytes: [], arrivalNanos: 0) == nil)
        #expect(ReceivedPacket(bytes: Array(good.prefix(11)), arrivalNanos: 0) == nil)  // short header
        #expect(ReceivedPacket(bytes: [0x40] + good.dropFirst(), arrivalNanos: 0) == nil)  // version 1
        #expect(ReceivedPacket(bytes: [0x8F] + good.dropFirst(), arrivalNanos: 0) == nil)  // 15 CSRCs announced
        #expect(ReceivedPacket(bytes: [0x90] + good.dropFirst(), arrivalNanos: 0) == nil)  // extension past the end
        var padded = good
        padded[0] = 0xA0
        padded[12] = 200  // padding longer than the packet
        #expect(ReceivedPacket(bytes: padded, arrivalNanos: 0) == nil)
        padded[12] = 1  // padding that is the whole payload: an empty payload, not an error
        #expect(ReceivedPacket(bytes: padded, arrivalNanos: 0)?.payload == [])
    }
}

@Suite struct ReorderBufferTests {
    @Test func reorderedPacketsWithinTheHorizonComeOutInOrder() {
        var b = ReorderBuffer(horizonNanos: 100 * ms)
        var out: [UInt16] = []
        for (i, seq) in [12, 10, 11, 15, 13, 14, 16, 17, 19, 18].enumerated() {
            let now = UInt64(i) * 30 * ms
            #expect(b.insert(packet(UInt16(seq), at: now)) == .accepted)
            let released = b.release(now: now)
            #expect(released.allSatisfy { !$0.lossBefore })
            out += sequences(released)
            // The first packet to arrive waits the horizon: 10 and 11 were sent before it.
            if now <= 100 * ms { #expect(out.isEmpty) }
            // 19 waits for 18.
            if seq == 19 { #expect(out == [10, 11, 12, 13, 14, 15, 16, 17]) }
        }
        #expect(out == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
        #expect(b.count == 0)
    }

    @Test func duplicatesAndLatePacketsAreRefused() {
        var b = ReorderBuffer(horizonNanos: 500 * ms)
        #expect(b.insert(packet(100, at: 0)) == .accepted)
        #expect(b.insert(packet(102, at: 600 * ms)) == .accepted)
        #expect(b.insert(packet(102, at: 600 * ms)) == .duplicate)
        #expect(sequences(b.release(now: 600 * ms)) == [100])
        #expect(b.insert(packet(100, at: 600 * ms)) == .late)
        #expect(b.insert(packet(101, at: 600 * ms)) == .accepted)
        #expect(sequences(b.release(now: 600 * ms)) == [101, 102])
        #expect(b.insert(packet(101, at: 600 * ms)) == .late)
        #expect(b.release(now: 600 * ms).isEmpty)
    }

    @Test func aPacketOlderThanTheFirstMovesTheStartBackBeforeAnythingIsReleased() {
        var b = ReorderBuffer()
        #expect(b.insert(packet(50)) == .accepted)
        #expect(b.insert(packet(48)) == .accepted)
        #expect(b.nacks(now: 0) == [49])
        #expect(b.insert(packet(49)) == .accepted)
        #expect(b.release(now: 500 * ms).isEmpty)
        #expect(sequences(b.release(now: 501 * ms)) == [48, 49, 50])
    }

    @Test func theWrapAt65535IsInvisible() {
        var b = ReorderBuffer()
        let order: [UInt16] = [65530, 65531, 65533, 65532, 65534, 0, 65535, 2, 1, 3, 5, 4]
        var out: [UInt16] = []
        for (i, seq) in order.enumerated() {
            let now = i == 0 ? 0 : 600 * ms + UInt64(i) * ms
            #expect(b.insert(packet(seq, at: now)) == .accepted)
            out += sequences(b.release(now: now))
        }
        #expect(out == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4, 5])
    }

    @Test func aGapIsGivenUpWhenThePacketAfterItHasWaitedTheHorizon() {
        var b = ReorderBuffer(horizonNanos: 500 * ms)
        _ = b.insert(packet(1, at: 0))
        _ = b.insert(packet(2, at: 0))
        _ = b.insert(packet(5, at: 100 * ms))
        _ = b.insert(packet(6, at: 120 * ms))
        #expect(b.release(now: 120 * ms).isEmpty)
        #expect(sequences(b.release(now: 501 * ms)) == [1, 2])
        // 3 and 4 may still come: 5 has waited 500 ms only at 600 ms.
        #expect(b.release(now: 600 * ms).isEmpty)
        let late = b.release(now: 600 * ms + 1)
        #expect(sequences(late) == [5, 6])
        #expect(late.map(\.lossBefore) == [true, false])
        #expect(b.insert(packet(4, at: 700 * ms)) == .late)
        _ = b.insert(packet(7, at: 700 * ms))
        let next = b.release(now: 700 * ms)
        #expect(sequences(next) == [7])
        #expect(next.first?.lossBefore == false)
    }

    @Test func nacksAskForWhatIsMissingAtMostThreeTimes100msApart() {
        var b = ReorderBuffer(horizonNanos: 1000 * ms)
        _ = b.insert(packet(1, at: 0))
        _ = b.insert(packet(4, at: 10 * ms))
        _ = b.insert(packet(7, at: 20 * ms))
        _ = b.release(now: 20 * ms)
        #expect(b.nacks(now: 20 * ms) == [2, 3, 5, 6])
        #expect(b.nacks(now: 60 * ms).isEmpty)  // too soon to ask again
        _ = b.insert(packet(5, at: 70 * ms))  // a retransmission arrives
        #expect(b.nacks(now: 121 * ms) == [2, 3, 6])
        #expect(b.nacks(now: 222 * ms) == [2, 3, 6])
        #expect(b.nacks(now: 400 * ms).isEmpty)  // asked three times
        #expect(b.release(now: 400 * ms).isEmpty)
    }

    @Test func nacksStopForPacketsMissingLongerThanTheHorizon() {
        var b = ReorderBuffer(horizonNanos: 200 * ms)
        _ = b.insert(packet(1, at: 0))
        _ = b.insert(packet(3, at: 0))
        _ = b.insert(packet(6, at: 150 * ms))
        #expect(b.nacks(now: 210 * ms) == [4, 5])  // 2 has been missing 210 ms
        // Past 3's horizon the head gap goes; 4 and 5 are still awaited and NACKed.
        let released = b.release(now: 210 * ms)
        #expect(sequences(released) == [1, 3])
        #expect(b.nacks(now: 320 * ms) == [4, 5])
    }

    @Test func aBigJumpRestartsTheBufferThere() {
        var b = ReorderBuffer()
        _ = b.insert(packet(100))
        _ = b.insert(packet(102))
        #expect(b.insert(packet(40_000, at: 10 * ms)) == .reset)
        // What was waiting comes out at once.
        let before = b.release(now: 10 * ms)
        #expect(sequences(before) == [100, 102])
        #expect(before.map(\.lossBefore) == [false, true])
        // The restart is a new start: an older packet of the new numbering is still welcome.
        #expect(b.insert(packet(39_999, at: 20 * ms)) == .accepted)
        #expect(b.insert(packet(40_001, at: 20 * ms)) == .accepted)
        let after = b.release(now: 511 * ms)
        #expect(sequences(after) == [39_999, 40_000, 40_001])
        #expect(after.map(\.lossBefore) == [true, false, false])
        #expect(b.nacks(now: 511 * ms).isEmpty)
        // A jump back by more than the limit is a restart too, not a late packet.
        #expect(b.insert(packet(30_000)) == .reset)
    }

    @Test func capacityBoundsWhatIsHeld() {
        var b = ReorderBuffer(horizonNanos: 10_000 * ms, capacity: 64)
        _ = b.insert(packet(0))
        // 1 never comes; 2...200 do, long before the horizon.
        var out: [(packet: ReceivedPacket, lossBefore: Bool)] = []
        for seq in UInt16(2)...200 {
            #expect(b.insert(packet(seq)) == .accepted)
            #expect(b.count <= 64)
            out += b.release(now: 0)
        }
        #expect(sequences(out) == Array(0...200).filter { $0 != 1 }.map(UInt16.init))
        #expect(out.filter(\.lossBefore).map(\.packet.sequenceNumber) == [2])
        #expect(b.count == 0)
    }

    @Test func drainReleasesEverythingAtTheEnd() {
        var b = ReorderBuffer()
        for seq: UInt16 in [1, 2, 4, 7] { _ = b.insert(packet(seq)) }
        #expect(b.release(now: 0).isEmpty)
        let rest = b.drain()
        #expect(sequences(rest) == [1, 2, 4, 7])
        #expect(rest.map(\.lossBefore) == [false, false, true, true])
        #expect(b.drain().isEmpty)
    }
}
