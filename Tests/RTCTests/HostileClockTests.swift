import Testing
import RTC

/// Clock arithmetic that used to trap on values a hostile peer or a long uptime can produce.
@Suite struct HostileClockTests {
    static let hour: UInt64 = 3_600_000_000_000

    @Test func ticksMatchTheExactProduct() {
        #expect(RTPClock.ticks(nanoseconds: 1_000_000_000, clockRate: 90_000) == 90_000)
        #expect(RTPClock.ticks(nanoseconds: 20_000_000, clockRate: 48_000) == 960)
        #expect(RTPClock.ticks(nanoseconds: 1_500_000_000, clockRate: 8_000) == 12_000)
        // Wraps modulo 2^32 as RTP timestamps do: 1 day at 90 kHz is 7,776,000,000 ticks.
        #expect(RTPClock.ticks(nanoseconds: 24 * Self.hour, clockRate: 90_000) == UInt32(truncatingIfNeeded: UInt64(7_776_000_000)))
    }

    @Test func ticksNeverOverflow() {
        // The values that trapped: a clock rate of 2^32-1 (from a=rtpmap) and years of uptime.
        _ = RTPClock.ticks(nanoseconds: .max, clockRate: .max)
        _ = RTPClock.ticks(nanoseconds: 8 * Self.hour, clockRate: .max)
        _ = RTPClock.ticks(nanoseconds: .max, clockRate: 90_000)
    }

    @Test func receiveStatisticsSurviveAnyUptimeAndTimestamp() {
        // 36 minutes of uptime trapped with a rate of 2^32-1; a year of uptime at 192 kHz is fine too.
        for rate: UInt32 in [.max, 192_000, 90_000, 1] {
            var s = RTPReceiveStatistics(ssrc: 1, clockRate: rate)
            for (i, arrival) in ([40 * 60_000_000_000, 365 * 24 * Self.hour, UInt64.max - 1, UInt64.max] as [UInt64]).enumerated() {
                s.update(sequenceNumber: UInt16(i), timestamp: i % 2 == 0 ? 0 : .max, arrivalNanos: arrival)
            }
            _ = s.reportBlock(now: .max)
        }
    }

    @Test func delaySinceSenderReportAfterDaysOfSilence() {
        // 78 hours without a sender report overflowed (nanoseconds × 65536).
        var s = RTPReceiveStatistics(ssrc: 1, clockRate: 48_000)
        s.update(sequenceNumber: 1, timestamp: 0, arrivalNanos: 1)
        s.senderReportReceived(compactNTP: 7, at: 1)
        let block = s.reportBlock(now: 100 * Self.hour).block
        #expect(block.lastSenderReport == 7)
        let wrapped = UInt32(truncatingIfNeeded: (100 * Self.hour - 1) / 1_000_000_000 * 65_536 + ((100 * Self.hour - 1) % 1_000_000_000) * 65_536 / 1_000_000_000)
        #expect(block.delaySinceLastSenderReport == wrapped)
    }

    @Test func jitterIsStillRFC3550s() {
        // 20 ms packets at 48 kHz arriving exactly on time: no jitter; one 10 ms late: 480/16 = 30 ticks.
        var s = RTPReceiveStatistics(ssrc: 1, clockRate: 48_000)
        let start: UInt64 = 5 * Self.hour
        for i in 0..<10 {
            s.update(sequenceNumber: UInt16(i), timestamp: UInt32(i * 960), arrivalNanos: start + UInt64(i) * 20_000_000)
        }
        #expect(s.reportBlock(now: start).block.jitter == 0)
        s.update(sequenceNumber: 10, timestamp: 9_600, arrivalNanos: start + 210_000_000)
        #expect(s.reportBlock(now: start).block.jitter == 30)
    }
}
