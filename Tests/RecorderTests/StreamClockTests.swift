import RecorderCore
import Testing

@Suite struct StreamClockTests {
    /// 90 kHz ticks for a time in ms.
    func ticks(_ ms: Int64, base: UInt32) -> UInt32 { base &+ UInt32(truncatingIfNeeded: ms * 90) }

    @Test func beforeAnyReportTheLeastDelayedPacketAnchors() {
        var clock = StreamClock(clockRate: 90_000)
        var sender = SenderClockOffset()
        // Frames every 33 ms arriving with 20–50 ms of jitter on a base delay.
        let delays: [Int64] = [50, 20, 40, 30]
        var extended: [Int64] = []
        for (i, d) in delays.enumerated() {
            let t = Int64(i) * 33
            extended.append(clock.observe(timestamp: ticks(t, base: 4_294_967_000), arrivalMicros: 1_000_000 + (t + d) * 1_000, participant: &sender))
        }
        // Frames are placed after the reorder wait, when the least delay is known.
        let placed = extended.map { clock.place($0, participant: sender)! }
        // All placed on the 20 ms path, 33 ms apart, across the timestamp wrap.
        #expect(placed.map { $0 - placed[0] } == [0, 33_000, 66_000, 99_000])
        #expect(placed[0] == 1_020_000)
    }

    @Test func senderReportsLipSyncTwoStreamsWithDifferentDelays() {
        // Audio and video captured together at sender time 10 s; video's path is 80 ms slower.
        var audio = StreamClock(clockRate: 48_000)
        var video = StreamClock(clockRate: 90_000)
        var sender = SenderClockOffset()
        let ntp10s: UInt64 = (3_000_000_010 << 32)
        audio.senderReport(ntp: ntp10s, rtpTimestamp: 1_000)
        video.senderReport(ntp: ntp10s, rtpTimestamp: 50_000)
        let a = audio.observe(timestamp: 1_000, arrivalMicros: 5_000_000 + 30_000, participant: &sender)
        let v = video.observe(timestamp: 50_000, arrivalMicros: 5_000_000 + 110_000, participant: &sender)
        let pa = audio.place(a, participant: sender)!
        let pv = video.place(v, participant: sender)!
        #expect(pa == pv)
        #expect(pa == 5_030_000)
    }

    @Test func aReportThatRunsBackwardsIsIgnored() {
        var clock = StreamClock(clockRate: 90_000)
        var sender = SenderClockOffset()
        clock.senderReport(ntp: 100 << 32, rtpTimestamp: 0)
        // Ten seconds later by NTP but only one by RTP: not credible.
        clock.senderReport(ntp: 110 << 32, rtpTimestamp: 90_000)
        let ext = clock.observe(timestamp: 90_000, arrivalMicros: 1_000_000, participant: &sender)
        // Still placed by the first report: sender time 101 s.
        #expect(clock.place(ext, participant: sender)! == 1_000_000)
        let next = clock.observe(timestamp: 180_000, arrivalMicros: 2_000_000, participant: &sender)
        #expect(clock.place(next, participant: sender)! == 2_000_000)
    }
}

@Suite struct StreamClockPlacementTests {
    @Test func framesKeepTheSendersSpacingWhateverTheJitter() {
        var clock = StreamClock(clockRate: 90_000)
        var sender = SenderClockOffset()
        var placed: [Int64] = []
        for i in 0..<30 {
            let jitter = Int64((i * 37) % 23) * 1_000
            let ext = clock.observe(timestamp: UInt32(i * 4_500), arrivalMicros: 10_000_000 + Int64(i) * 50_000 + jitter, participant: &sender)
            placed.append(clock.place(ext, participant: sender)!)
        }
        #expect(zip(placed, placed.dropFirst()).allSatisfy { $1 - $0 == 50_000 })
    }

    @Test func aStreamWhoseClockFallsBehindTheSenderReportsMovesForward() {
        // Audio whose device delivers 90% of real time: 20 ms packets every 22.2 ms of wall time.
        var clock = StreamClock(clockRate: 48_000)
        var sender = SenderClockOffset()
        clock.senderReport(ntp: UInt64(3_000_000_000) << 32, rtpTimestamp: 0)
        var placed: [Int64] = []
        for i in 0..<200 {
            let wall = Int64(i) * 22_222
            if i % 50 == 0 {
                // Reports map RTP to the wall clock as it really passes.
                let ntp = (UInt64(3_000_000_000) << 32) + UInt64(wall) * (1 << 32) / 1_000_000
                clock.senderReport(ntp: ntp, rtpTimestamp: UInt32(i * 960))
            }
            let ext = clock.observe(timestamp: UInt32(i * 960), arrivalMicros: 5_000_000 + wall + 10_000, participant: &sender)
            placed.append(clock.place(ext, participant: sender)!)
        }
        let steps = zip(placed, placed.dropFirst()).map { $1 - $0 }
        // Never backwards; mostly the 20 ms of RTP, with forward moves (gaps) that keep it on the wall clock.
        #expect(steps.allSatisfy { $0 >= 20_000 })
        #expect(steps.filter { $0 == 20_000 }.count > 150)
        // Within what the clock can lose between two reports (about 110 ms here) plus the lag allowed;
        // left alone it would be 440 ms behind by now.
        #expect(abs(placed.last! - (5_000_000 + 199 * 22_222 + 10_000)) <= 110_000 + StreamClock.lagMicros)
    }

    @Test func timestampsThatJumpArePlacedByArrivalAtOnce() {
        var clock = StreamClock(clockRate: 48_000)
        var sender = SenderClockOffset()
        let a = clock.observe(timestamp: 0, arrivalMicros: 1_000_000, participant: &sender)
        #expect(clock.place(a, participant: sender) == 1_000_000)
        // 10 s of timestamps in 20 ms of arrival.
        let b = clock.observe(timestamp: 480_960, arrivalMicros: 1_020_000, participant: &sender)
        #expect(clock.place(b, participant: sender) == 1_020_000)
    }

    @Test func timestampsThatLeapHalfTheClockEveryPacketDoNotOverflow() {
        // A hostile sender: each timestamp half the 32-bit clock past the last, so the extended
        // timestamp grows 2^31 a packet; at 4300 packets `ticks * 1e6` overflowed (a trap).
        for rate: UInt32 in [1, 90_000, .max] {
            var clock = StreamClock(clockRate: rate)
            var sender = SenderClockOffset()
            var timestamp: UInt32 = 0
            for i in 0..<5_000 {
                timestamp &+= 0x7FFF_FFFF
                let arrival = 1_000_000 + Int64(i) * 1_000
                if i % 100 == 0 { clock.senderReport(ntp: UInt64(i) << 32 | 0xFFFF_FFFF, rtpTimestamp: timestamp) }
                let extended = clock.observe(timestamp: timestamp, arrivalMicros: arrival, participant: &sender)
                #expect(clock.place(extended, participant: sender, notBefore: arrival - 600_000) != nil)
            }
        }
    }
}
