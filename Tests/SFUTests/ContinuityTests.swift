import SFUCore
import Testing

@Suite struct ContinuityTests {
    @Test func sameSourcePassesThroughUnchanged() {
        var c = RTPContinuity(clockRate: 90_000)
        for i: UInt16 in 0..<5 {
            let out = c.map(ssrc: 1, sequence: 1000 + i, timestamp: 3000 * UInt32(i), now: 1_000_000 * UInt64(i + 1))
            #expect(out.sequence == 1000 + i)
            #expect(out.timestamp == 3000 * UInt32(i))
        }
    }
}
