import RecorderCore
import Testing

@Suite struct WrapExtenderTests {
    @Test func sequenceNumbersCarryOnAcrossTheWrap() {
        var e = WrapExtender<UInt16>()
        #expect(e.extend(65_533) == 65_533)
        #expect(e.extend(65_535) == 65_535)
        #expect(e.extend(2) == 65_538)
        // A late packet from before the wrap stays before it and does not move the reference.
        #expect(e.extend(65_534) == 65_534)
        #expect(e.extend(3) == 65_539)
    }

    @Test func aStreamStartingLowCanGoBackBelowZero() {
        var e = WrapExtender<UInt16>()
        #expect(e.extend(1) == 1)
        #expect(e.extend(65_535) == -1)
        #expect(e.extend(2) == 2)
    }

    @Test func timestampsWrapAt32Bits() {
        var e = WrapExtender<UInt32>()
        #expect(e.extend(4_294_960_000) == 4_294_960_000)
        #expect(e.extend(3_000) == 4_294_970_296)
        #expect(e.peek(4_294_966_000) == 4_294_966_000)
    }
}
