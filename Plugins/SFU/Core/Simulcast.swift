/// The simulcast layer one subscriber stream receives: the subscriber's target (`substream`,
/// Janus's numbering: 0 lowest, 2 highest), capped by what its bandwidth carries and by the layers
/// the publisher is actually sending. Switches happen only on a keyframe of the new layer, so the
/// receiver's decoder never gets a frame it cannot decode.
public struct SimulcastSelector: Sendable {
    public var targetSubstream: Int
    public var targetTemporal: Int
    /// The layer being forwarded, -1 before the first keyframe.
    public private(set) var substream = -1

    public enum Decision: Equatable, Sendable {
        case drop
        case forward
        /// Forward; this packet starts the new layer (tell the subscriber).
        case switched
    }

    public init(targetSubstream: Int = 2, targetTemporal: Int = 2) {
        self.targetSubstream = targetSubstream
        self.targetTemporal = targetTemporal
    }

    /// The layer to aim for: the highest active layer at or under the target and the bandwidth cap,
    /// else the lowest active one. `active` is a bit mask of layers with recent packets.
    public func goal(active: UInt8, cap: Int) -> Int? {
        let want = min(targetSubstream, cap)
        var best: Int?
        for layer in 0..<8 where active & (1 << layer) != 0 {
            if layer <= want { best = layer } else if best == nil { return layer }
        }
        return best
    }

    /// Whether a packet of `layer` is forwarded. `active` and `cap` as in `goal`.
    public mutating func decide(layer: Int, keyframe: Bool, active: UInt8, cap: Int) -> Decision {
        let currentActive = substream >= 0 && active & (1 << substream) != 0
        let goal = self.goal(active: active, cap: cap) ?? layer
        if layer == substream && currentActive {
            return .forward
        }
        if keyframe && (layer == goal || (!currentActive && layer <= goal)) {
            substream = layer
            return .switched
        }
        return .drop
    }

    /// Whether this stream waits for a keyframe on another layer (the publisher should be asked).
    public func wantsKeyframe(active: UInt8, cap: Int) -> Bool {
        guard let goal = goal(active: active, cap: cap) else { return false }
        return goal != substream
    }

    /// Forgets the current layer (the source changed): the next keyframe starts again.
    public mutating func reset() { substream = -1 }

    /// The highest layer a `budget` (bits per second for this stream) carries, given each layer's
    /// measured bitrate (0: not measured yet). A layer above the one forwarded must fit with a
    /// fifth to spare, and the one forwarded is kept until the budget falls under four fifths of
    /// it: every switch waits for a keyframe, so an estimate wavering around one layer's rate must
    /// not switch at every wave.
    /// Takes any collection, so the caller's per-packet call can pass a lazy view (no array made).
    public static func layerCap(bitrates: some Collection<UInt64>, budget: UInt64, current: Int) -> Int {
        var cap = 0
        for (layer, rate) in bitrates.enumerated() where rate > 0 {
            let need = layer > current ? rate / 5 * 6 : layer == current ? rate / 5 * 4 : rate
            if need <= budget { cap = layer }
        }
        return cap
    }

    /// What forwarding the layer the subscriber asked for would take (the highest measured layer at
    /// or under the target), with the fifth an up-switch needs; 0 when nothing is measured.
    public func wantedBitrate(bitrates: [UInt64]) -> UInt64 {
        var wanted: UInt64 = 0
        for (layer, rate) in bitrates.enumerated() where rate > 0 && layer <= max(targetSubstream, 0) { wanted = rate }
        if wanted == 0 { wanted = bitrates.first { $0 > 0 } ?? 0 }
        return wanted / 5 * 6
    }
}

/// Which simulcast layers a publisher is sending, and which it has sent steadily. A layer is
/// active with a packet in the last 250 ms, and steady once active for a second without a gap. A
/// publisher whose own uplink is short turns layers off and on again within seconds; a subscriber
/// moved onto a layer that has just come back is moved off it again at the next gap, each move a
/// keyframe wait, so a layer above a subscriber's is chosen only once steady.
public struct LayerActivity: Sendable {
    private var lastPacketAt: (UInt64, UInt64, UInt64) = (0, 0, 0)
    private var activeSince: (UInt64, UInt64, UInt64) = (0, 0, 0)
    public static let activeNanos: UInt64 = 250_000_000
    public static let steadyNanos: UInt64 = 1_000_000_000

    public init() {}

    /// A packet of `layer` (0...2; others are ignored) arrived.
    public mutating func packet(layer: Int, now: UInt64) {
        guard (0...2).contains(layer) else { return }
        let last = Self.get(lastPacketAt, layer)
        if last == 0 || now - min(now, last) >= Self.activeNanos { Self.set(&activeSince, layer, max(now, 1)) }
        Self.set(&lastPacketAt, layer, max(now, 1))
    }

    /// Bit mask of layers with a packet in the last 250 ms.
    public func active(now: UInt64) -> UInt8 {
        var mask: UInt8 = 0
        for layer in 0...2 {
            let last = Self.get(lastPacketAt, layer)
            if last != 0, now - min(now, last) < Self.activeNanos { mask |= 1 << layer }
        }
        return mask
    }

    /// The layers a subscriber on `current` (-1: none yet) may aim for: the steady ones, and its own
    /// and those under it while active (going down onto a layer is never the risk; going up onto
    /// one that comes and goes is); the active ones while none is steady yet (the stream just started).
    public func choosable(now: UInt64, current: Int) -> UInt8 {
        let active = active(now: now)
        var steady: UInt8 = 0
        for layer in 0...2 where active & (1 << layer) != 0 && now - min(now, Self.get(activeSince, layer)) >= Self.steadyNanos {
            steady |= 1 << layer
        }
        guard steady != 0 else { return active }
        guard (0...2).contains(current) else { return steady }
        return steady | (active & UInt8((1 << (current + 1)) - 1))
    }

    private static func get(_ t: (UInt64, UInt64, UInt64), _ i: Int) -> UInt64 { i == 0 ? t.0 : i == 1 ? t.1 : t.2 }
    private static func set(_ t: inout (UInt64, UInt64, UInt64), _ i: Int, _ v: UInt64) {
        switch i {
        case 0: t.0 = v
        case 1: t.1 = v
        default: t.2 = v
        }
    }
}

/// The bandwidth cap on one subscriber stream's layer, as forwarding applies it: a lower cap at
/// once (the path is full now), a higher one only once it has held for `holdNanos`. An estimate
/// recovering from congestion overshoots and falls back within a second or two, and a layer
/// switched up into that costs a keyframe wait going up and a freeze coming down.
public struct LayerCapHold: Sendable {
    public private(set) var cap = Int.max
    private var higherSince: UInt64 = 0
    public static let holdNanos: UInt64 = 2_500_000_000

    public init() {}

    /// The cap to apply now, given the one the budget proposes.
    public mutating func update(_ proposed: Int, now: UInt64) -> Int {
        if proposed <= cap {
            cap = proposed
            higherSince = 0
        } else if higherSince == 0 {
            higherSince = max(now, 1)
        } else if now - min(now, higherSince) >= Self.holdNanos {
            cap = proposed
            higherSince = 0
        }
        return cap
    }
}

/// RFC 6464 levels averaged over a number of packets, as VideoRoom's `audio_active_packets` and
/// `audio_level_average`: levels are -dBov (0 loud, 127 silence), so "talking" is an average
/// below the threshold.
public struct AudioLevelMeter: Sendable {
    private var sum = 0
    private var count = 0
    public private(set) var talking = false
    public private(set) var lastAverage = 127.0

    public init() {}

    /// Adds one packet's level; every `packets` packets returns the new talking state when it changed.
    public mutating func add(level: Int, packets: Int, threshold: Int) -> Bool? {
        sum += level
        count += 1
        guard count >= packets else { return nil }
        lastAverage = Double(sum) / Double(count)
        sum = 0
        count = 0
        let now = lastAverage < Double(threshold)
        guard now != talking else { return nil }
        talking = now
        return now
    }

    public mutating func reset() {
        sum = 0
        count = 0
        talking = false
    }
}

/// Bits per second of one stream, measured over windows of about a second.
public struct BitrateMeter: Sendable {
    private var windowStart: UInt64 = 0
    private var bytes: UInt64 = 0
    public private(set) var bitsPerSecond: UInt64 = 0

    public init() {}

    public mutating func add(bytes n: Int, now: UInt64) {
        if windowStart == 0 { windowStart = now }
        let elapsed = now - min(now, windowStart)
        if elapsed >= 1_000_000_000 {
            // Full width: bytes · 8e9 passes 2^64 at 2.3 GB in one window; `elapsed` (at least
            // 1e9 here) brings the quotient back under bytes · 8.
            bitsPerSecond = elapsed.dividingFullWidth((bytes &* 8).multipliedFullWidth(by: 1_000_000_000)).quotient
            bytes = 0
            windowStart = now
        }
        bytes &+= UInt64(max(n, 0))
    }
}
