import Testing
@testable import RTC

/// A bottleneck as tbf makes one: packets leave at `capacity` bits/s after those queued before them,
/// a packet that would wait more than `maxQueue` is dropped, and a share `loss` is lost at random.
/// Arrivals are receiver time in µs; the one-way delay adds `propagation`.
private struct Link {
    var capacity: Double
    var maxQueueNanos: UInt64 = 100_000_000
    var propagationNanos: UInt64 = 20_000_000
    var loss = 0.0
    private var freeAt: UInt64 = 0

    init(capacity: Double) { self.capacity = capacity }

    mutating func carry(size: Int, at now: UInt64, random: inout SplitMix64) -> Int64? {
        if loss > 0, Double(random.next() % 10_000) / 10_000 < loss { return nil }
        let start = max(now, freeAt)
        guard start - now <= maxQueueNanos else { return nil }
        freeAt = start + UInt64(Double(size * 8) / capacity * 1e9)
        return Int64((freeAt + propagationNanos) / 1_000)
    }
}

/// A sender driving a `BandwidthEstimator` over a `Link`: media at min(estimate, `wanted`) in
/// 1000-byte packets every 10 ms, probe filler when a cluster runs, and transport feedback from
/// the receiver every 100 ms (delivered at once; the one-way delay is in the arrivals).
private struct Session {
    let estimator = BandwidthEstimator(initial: 1_000_000)
    var link: Link
    var wanted: Double
    var now: UInt64 = 1_000_000_000
    var sequence: UInt16 = 0
    var pending: [TransportFeedback.PacketResult] = []
    var random = SplitMix64(state: 7)
    var lastFeedbackAt: UInt64 = 0
    var credit = 0.0

    init(capacity: Double, wanted: Double) {
        link = Link(capacity: capacity)
        self.wanted = wanted
        estimator.desired = UInt64(wanted)
    }

    mutating func send(_ size: Int) {
        sequence &+= 1
        estimator.sent(sequence: sequence, size: size, now: now)
        pending.append(TransportFeedback.PacketResult(sequenceNumber: sequence, arrivalTime: link.carry(size: size, at: now, random: &random)))
    }

    /// Runs `seconds`; returns the estimates seen once a second.
    mutating func run(seconds: Int) -> [UInt64] {
        var seen: [UInt64] = []
        for step in 1...(seconds * 1_000) {
            now += 1_000_000
            if step % 10 == 0 {
                credit += min(Double(estimator.estimate), wanted) / 8 / 100
                while credit >= 1_000 {
                    credit -= 1_000
                    send(1_000)
                }
            }
            while estimator.prober.fillerDue(now: now) > 0 { send(1_000) }
            if now - lastFeedbackAt >= 100_000_000, !pending.isEmpty {
                lastFeedbackAt = now
                // Only what has arrived by now is reported; a lost packet once a later one arrived.
                let nowMicros = Int64(now / 1_000)
                let ready = pending.prefix { ($0.arrivalTime ?? 0) <= nowMicros }
                if !ready.isEmpty {
                    _ = estimator.feedback(Array(ready), now: now)
                    pending.removeFirst(ready.count)
                }
                _ = estimator.startProbeIfDue(now: now)
            }
            if step % 1_000 == 0 { seen.append(estimator.estimate) }
        }
        return seen
    }
}

@Suite struct CongestionTests {
    @Test func aHistoryEntryIsReadOnceAndNotWhenStale() {
        let history = SendHistory(maxAge: 1_000)
        history.record(sequence: 7, size: 1_200, cluster: 3, now: 100)
        #expect(history.report(sequence: 7, now: 200) == SendHistory.Entry(sentAt: 100, size: 1_200, cluster: 3))
        #expect(history.report(sequence: 7, now: 200) == nil)
        history.record(sequence: 8, size: 100, now: 100)
        #expect(history.report(sequence: 8, now: 5_000) == nil)
        // The slot of 7 + slotCount is 7's: the newer packet replaces it.
        history.record(sequence: 7 &+ UInt16(SendHistory.slotCount), size: 10, now: 300)
        #expect(history.report(sequence: 7, now: 400) == nil)
    }

    @Test func delayGrowingAcrossGroupsIsOveruse() {
        var trend = DelayTrend()
        var usage = DelayTrend.Usage.normal
        // Every 10 ms a packet is sent; each arrives 2 ms later than the one before it would have.
        for i in 0..<100 {
            let sent = UInt64(i) * 10_000_000
            usage = trend.add(sentAt: sent, arrival: Int64(i) * 12_000)
        }
        #expect(usage == .overusing)
        var steady = DelayTrend()
        for i in 0..<100 { usage = steady.add(sentAt: UInt64(i) * 10_000_000, arrival: Int64(i) * 10_000 + Int64(i % 3) * 300) }
        #expect(usage == .normal)
    }

    @Test func settlesUnderACappedLink() {
        var session = Session(capacity: 400_000, wanted: 2_500_000)
        let estimates = session.run(seconds: 20)
        let settled = estimates.suffix(10)
        #expect(settled.allSatisfy { $0 < 520_000 }, "\(estimates)")
        #expect(settled.allSatisfy { $0 > 200_000 }, "\(estimates)")
    }

    @Test func climbsBackWhenTheCapLifts() {
        var session = Session(capacity: 300_000, wanted: 1_500_000)
        let capped = session.run(seconds: 15)
        #expect(capped.last.map { $0 < 400_000 } == true, "\(capped)")
        session.link.capacity = 2_500_000
        let lifted = session.run(seconds: 20)
        // Probes find the room: the estimate reaches what the sender wants without 1.5 × acked's limit.
        let reached = lifted.firstIndex { $0 >= 1_400_000 }
        #expect(reached != nil && reached! < 15, "\(lifted)")
    }

    @Test func randomLossThatIsNotCongestionKeepsTheRate() {
        var session = Session(capacity: 10_000_000, wanted: 1_500_000)
        session.link.loss = 0.03
        let estimates = session.run(seconds: 20)
        #expect(estimates.suffix(10).allSatisfy { $0 >= 1_400_000 }, "\(estimates)")
    }

    @Test func heavyLossLowersTheCeiling() {
        var session = Session(capacity: 10_000_000, wanted: 1_500_000)
        _ = session.run(seconds: 10)
        session.link.loss = 0.25
        let estimates = session.run(seconds: 5)
        #expect(estimates.last.map { $0 < 1_200_000 } == true, "\(estimates)")
    }

    @Test func feedbackPastItsBudgetIsNotRead() {
        let estimator = BandwidthEstimator()
        #expect(!estimator.admitsFeedback(statuses: 65_535, now: 1))
        var admitted = 0
        for _ in 0..<100 where estimator.admitsFeedback(statuses: 2_000, now: 2) { admitted += 1 }
        #expect(admitted == BandwidthEstimator.statusesPerSecond / 2_000)
        // A second later the budget is whole again.
        #expect(estimator.admitsFeedback(statuses: 2_000, now: 1_000_000_002))
        // More statuses than the history holds are never read.
        #expect(!estimator.admitsFeedback(statuses: SendHistory.slotCount + 1, now: 1_000_000_003))
    }

    @Test func nothingFromFeedbackTraps() {
        let estimator = BandwidthEstimator()
        for i in 0..<50 { estimator.sent(sequence: UInt16(i), size: 1_000, now: UInt64(i) * 1_000_000) }
        // Arrivals that jump about, run backwards and sit at the ends of the range.
        let results = (0..<50).map { i in
            TransportFeedback.PacketResult(sequenceNumber: UInt16(i), arrivalTime: [Int64.min / 4, 0, Int64.max / 4, -5, 3][i % 5])
        }
        _ = estimator.feedback(results, now: 60_000_000)
        #expect(estimator.estimate > 0)
    }
}

@Suite struct FeedbackRecorderTests {
    @Test func reportsArrivalsAndTheGapsBetween() throws {
        var recorder = FeedbackRecorder()
        let none = recorder.feedback(senderSSRC: 1, mediaSSRC: 2)
        #expect(none == nil)
        // Across the wrap: 65534, 65535, (0 lost), 1, and 65535 again (a duplicate).
        recorder.record(sequence: 65_534, micros: 1_000_000)
        recorder.record(sequence: 65_535, micros: 1_001_000)
        recorder.record(sequence: 1, micros: 1_003_000)
        recorder.record(sequence: 65_535, micros: 1_004_000)
        let firstBuilt = recorder.feedback(senderSSRC: 1, mediaSSRC: 2)
        let first = try #require(firstBuilt)
        #expect(first.baseSequenceNumber == 65_534)
        #expect(first.packetResults.map(\.arrivalTime) == [1_000_000, 1_001_000, nil, 1_003_000])
        // A packet the last feedback passed is late: not told again; the next starts after it.
        recorder.record(sequence: 0, micros: 1_005_000)
        recorder.record(sequence: 3, micros: 1_006_000)
        let secondBuilt = recorder.feedback(senderSSRC: 1, mediaSSRC: 2)
        let second = try #require(secondBuilt)
        #expect(second.baseSequenceNumber == 2)
        #expect(second.packetResults.map(\.arrivalTime) == [nil, 1_006_000])
        #expect(second.feedbackPacketCount == first.feedbackPacketCount &+ 1)
    }

    @Test func oneFeedbackIsBounded() throws {
        var recorder = FeedbackRecorder()
        for i in 0..<5_000 { recorder.record(sequence: UInt16(i * 3 % 65_536), micros: 1_000_000 + Int64(i)) }
        let feedbackBuilt = recorder.feedback(senderSSRC: 1, mediaSSRC: 2)
        let feedback = try #require(feedbackBuilt)
        #expect(Int(feedback.packetStatusCount) <= FeedbackRecorder.maximumSpan)
        #expect(feedback.packetResults.compactMap(\.arrivalTime).count <= FeedbackRecorder.capacity)
    }
}
