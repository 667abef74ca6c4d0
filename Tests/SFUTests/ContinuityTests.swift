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

    @Test func aNewSourceContinuesTheSequenceAndAdvancesTheClockByWallTime() {
        var c = RTPContinuity(clockRate: 90_000)
        _ = c.map(ssrc: 1, sequence: 65_534, timestamp: 4_000_000_000, now: 1_000_000_000)
        _ = c.map(ssrc: 1, sequence: 65_535, timestamp: 4_000_003_000, now: 1_033_000_000)
        // Another layer, numbered on its own; 100 ms later.
        let first = c.map(ssrc: 2, sequence: 17, timestamp: 123, now: 1_133_000_000)
        #expect(first.sequence == 0)  // 65535 + 1, wrapped
        #expect(first.timestamp == 4_000_003_000 &+ 9_000)
        let next = c.map(ssrc: 2, sequence: 18, timestamp: 3_123, now: 1_166_000_000)
        #expect(next.sequence == 1)
        #expect(next.timestamp == 4_000_003_000 &+ 12_000)
        // A late packet of the new source keeps its place.
        let late = c.map(ssrc: 2, sequence: 16, timestamp: 0, now: 1_170_000_000)
        #expect(late.sequence == 65_535)
    }

    @Test func droppedPacketsLeaveNoGap() {
        var c = RTPContinuity(clockRate: 90_000)
        _ = c.map(ssrc: 7, sequence: 100, timestamp: 0, now: 1)
        c.skip(ssrc: 7, sequence: 101)
        c.skip(ssrc: 7, sequence: 102)
        #expect(c.map(ssrc: 7, sequence: 103, timestamp: 3000, now: 2).sequence == 101)
        // A skip out of order changes nothing.
        c.skip(ssrc: 7, sequence: 90)
        #expect(c.map(ssrc: 7, sequence: 104, timestamp: 6000, now: 3).sequence == 102)
    }

    @Test func vp8PictureIDsContinueAcrossSources() {
        var v = VP8Continuity()
        #expect(v.map(ssrc: 1, pictureID: 32_766, tl0PicIdx: 250).pictureID == 32_766)
        #expect(v.map(ssrc: 1, pictureID: 32_767, tl0PicIdx: 255) == (32_767, 255))
        let switched = v.map(ssrc: 2, pictureID: 5, tl0PicIdx: 9)
        #expect(switched.pictureID == 0)  // 15-bit wrap
        #expect(switched.tl0PicIdx == 0)
        #expect(v.map(ssrc: 2, pictureID: 6, tl0PicIdx: 10) == (1, 1))
    }
}

@Suite struct SimulcastTests {
    let all: UInt8 = 0b111

    @Test func startsOnTheFirstKeyframeThenClimbsToTheTarget() {
        var s = SimulcastSelector(targetSubstream: 2)
        #expect(s.decide(layer: 2, keyframe: false, active: all, cap: 2) == .drop)
        // Video starts on whatever keyframe comes first, rather than waiting for the target's.
        #expect(s.decide(layer: 0, keyframe: true, active: all, cap: 2) == .switched)
        #expect(s.wantsKeyframe(active: all, cap: 2))
        #expect(s.decide(layer: 2, keyframe: false, active: all, cap: 2) == .drop)
        #expect(s.decide(layer: 0, keyframe: false, active: all, cap: 2) == .forward)
        #expect(s.decide(layer: 2, keyframe: true, active: all, cap: 2) == .switched)
        #expect(s.decide(layer: 2, keyframe: false, active: all, cap: 2) == .forward)
        #expect(s.decide(layer: 1, keyframe: true, active: all, cap: 2) == .drop)
        #expect(!s.wantsKeyframe(active: all, cap: 2))
    }

    @Test func aLowerTargetKeepsTheOldLayerUntilTheNewOnesKeyframe() {
        var s = SimulcastSelector(targetSubstream: 2)
        _ = s.decide(layer: 2, keyframe: true, active: all, cap: 2)
        s.targetSubstream = 0
        #expect(s.decide(layer: 2, keyframe: false, active: all, cap: 2) == .forward)
        #expect(s.decide(layer: 0, keyframe: false, active: all, cap: 2) == .drop)
        #expect(s.decide(layer: 0, keyframe: true, active: all, cap: 2) == .switched)
        #expect(s.decide(layer: 2, keyframe: false, active: all, cap: 2) == .drop)
        #expect(s.substream == 0)
    }

    @Test func bandwidthCapsTheLayerAndMissingLayersFallBack() {
        var s = SimulcastSelector(targetSubstream: 2)
        #expect(s.goal(active: all, cap: 1) == 1)
        #expect(s.decide(layer: 1, keyframe: true, active: all, cap: 1) == .switched)
        // The high layer stops arriving: the goal becomes the highest layer still sent.
        #expect(s.goal(active: 0b011, cap: 2) == 1)
        // Only the high layer is sent, but the cap is low: better the high layer than nothing.
        #expect(s.goal(active: 0b100, cap: 0) == 2)
        // The current layer stopped: any keyframe of an active layer under the goal takes over.
        var t = SimulcastSelector(targetSubstream: 2)
        _ = t.decide(layer: 2, keyframe: true, active: all, cap: 2)
        #expect(t.decide(layer: 0, keyframe: true, active: 0b011, cap: 2) == .switched)
    }
}

@Suite struct LayerBudgetTests {
    let rates: [UInt64] = [100_000, 300_000, 800_000]

    @Test func climbingNeedsAFifthToSpareAndStayingFourFifths() {
        // On layer 1: layer 2 needs 960 kbit/s, not 800.
        #expect(SimulcastSelector.layerCap(bitrates: rates, budget: 900_000, current: 1) == 1)
        #expect(SimulcastSelector.layerCap(bitrates: rates, budget: 960_000, current: 1) == 2)
        // On layer 2: kept down to 640 kbit/s, left under it.
        #expect(SimulcastSelector.layerCap(bitrates: rates, budget: 650_000, current: 2) == 2)
        #expect(SimulcastSelector.layerCap(bitrates: rates, budget: 600_000, current: 2) == 1)
        // Below every layer: the lowest (pausing is the caller's choice).
        #expect(SimulcastSelector.layerCap(bitrates: rates, budget: 10_000, current: 0) == 0)
        // A layer not measured yet is not chosen.
        #expect(SimulcastSelector.layerCap(bitrates: [100_000, 0, 800_000], budget: 500_000, current: 0) == 0)
    }

    @Test func aLowerCapAppliesAtOnceAHigherOneAfterItHolds() {
        var hold = LayerCapHold()
        let second: UInt64 = 1_000_000_000
        #expect(hold.update(2, now: 1 * second) == 2)
        #expect(hold.update(0, now: 2 * second) == 0)
        #expect(hold.update(2, now: 3 * second) == 0)
        // Back down before it held: the wait starts again.
        #expect(hold.update(0, now: 4 * second) == 0)
        #expect(hold.update(1, now: 5 * second) == 0)
        #expect(hold.update(1, now: 7 * second) == 0)
        #expect(hold.update(1, now: 8 * second) == 1)
    }

    @Test func aLayerThatCameBackIsChosenOnceSteady() {
        var layers = LayerActivity()
        let ms: UInt64 = 1_000_000
        // All three start: none steady yet, so every active one may be chosen.
        for t in stride(from: UInt64(1), through: 300, by: 20) { for l in 0...2 { layers.packet(layer: l, now: t * ms) } }
        #expect(layers.choosable(now: 300 * ms, current: -1) == 0b111)
        for t in stride(from: UInt64(320), through: 1_400, by: 20) { for l in 0...2 { layers.packet(layer: l, now: t * ms) } }
        #expect(layers.choosable(now: 1_400 * ms, current: 2) == 0b111)
        // The top layer pauses 400 ms and comes back: active again, but not steady for a second.
        for t in stride(from: UInt64(1_420), through: 2_000, by: 20) {
            for l in 0...1 { layers.packet(layer: l, now: t * ms) }
            if t >= 1_800 { layers.packet(layer: 2, now: t * ms) }
        }
        #expect(layers.active(now: 2_000 * ms) == 0b111)
        #expect(layers.choosable(now: 2_000 * ms, current: 1) == 0b011)
        // A subscriber still on it keeps it while it is active.
        #expect(layers.choosable(now: 2_000 * ms, current: 2) == 0b111)
        // A layer under the current one that just came back may be taken at once.
        var lower = LayerActivity()
        for t in stride(from: UInt64(1), through: 1_500, by: 20) { for l in 1...2 { lower.packet(layer: l, now: t * ms) } }
        lower.packet(layer: 0, now: 1_500 * ms)
        #expect(lower.choosable(now: 1_500 * ms, current: 2) == 0b111)
        #expect(lower.choosable(now: 1_500 * ms, current: 1) == 0b111)
        for t in stride(from: UInt64(2_020), through: 2_900, by: 20) { for l in 0...2 { layers.packet(layer: l, now: t * ms) } }
        #expect(layers.choosable(now: 2_900 * ms, current: 1) == 0b111)
        layers.packet(layer: 7, now: 3_000 * ms)  // not a layer: ignored
    }

    @Test func wantedIsTheTargetLayerWithHeadroom() {
        var s = SimulcastSelector(targetSubstream: 2)
        #expect(s.wantedBitrate(bitrates: rates) == 960_000)
        s.targetSubstream = 1
        #expect(s.wantedBitrate(bitrates: rates) == 360_000)
        #expect(s.wantedBitrate(bitrates: [0, 0, 0]) == 0)
    }
}

@Suite struct AudioLevelTests {
    @Test func talkingFollowsTheAverageOverTheWindow() {
        var m = AudioLevelMeter()
        var changes: [Bool] = []
        for _ in 0..<10 { if let c = m.add(level: 10, packets: 5, threshold: 25) { changes.append(c) } }
        for _ in 0..<4 { if let c = m.add(level: 127, packets: 5, threshold: 25) { changes.append(c) } }
        #expect(changes == [true])
        if let c = m.add(level: 127, packets: 5, threshold: 25) { changes.append(c) }
        #expect(changes == [true, false])
        #expect(m.lastAverage == 127)
    }

    @Test func bitrateIsMeasuredPerSecond() {
        var b = BitrateMeter()
        for i in 0...100 { b.add(bytes: 1250, now: 1_000_000_000 + UInt64(i) * 10_000_000) }
        #expect(b.bitsPerSecond == 1_000_000)
    }

    // Hostile input: these trapped (arithmetic overflow) before the checks were made overflow-free.

    @Test func aHostileClockRateStillSwitchesSources() {
        // An SDP may announce any 32-bit clock rate; a minute between sources at 2^32 - 1 Hz
        // overflowed `elapsed * clockRate`.
        var c = RTPContinuity(clockRate: .max)
        _ = c.map(ssrc: 1, sequence: 10, timestamp: 0, now: 1_000_000_000)
        let switched = c.map(ssrc: 2, sequence: 500, timestamp: 77, now: 61_000_000_000)
        #expect(switched.sequence == 11)
        // 60 s at 2^32 - 1 Hz, modulo 2^32: 60 · (2^32 - 1) ≡ -60.
        #expect(switched.timestamp == 0 &- 60)
    }

    @Test func aHugeWindowOfBytesIsMeasuredWithoutOverflow() {
        var b = BitrateMeter()
        b.add(bytes: 1 << 40, now: 1)
        b.add(bytes: 0, now: 2_000_000_001)
        #expect(b.bitsPerSecond == (1 << 40) * 8 / 2)
    }
}
