/// Runs of bytes written one after another into a ring that starts small and doubles whenever a
/// lap of it took less than `minimumLap` nanoseconds, up to `maximumSize`: its memory follows the
/// rate it is written at. A run is named by its position (the bytes ever written before it) and
/// can be read back while no later run has been written over it. A run never straddles the end
/// of the ring (the lap ends early instead), so it reads as one contiguous buffer.
/// Allocation-free except when it grows. Not thread-safe: one media loop uses it.
public final class GrowingByteRing {
    public let maximumSize: Int
    public let minimumLap: UInt64
    private var ring: UnsafeMutableRawPointer
    private var size: Int
    /// Bytes ever written; the ring holds [max(validFrom, head - size), head).
    private var head: UInt64 = 0
    /// Where the bytes a growth carried over begin: the bigger ring has room for older
    /// positions, but their bytes were never copied into it.
    private var validFrom: UInt64 = 0
    /// When the current lap of the ring began.
    private var lapStartedAt: UInt64?

    public init(initialSize: Int = 32 * 1024, maximumSize: Int, minimumLap: UInt64) {
        precondition(initialSize > 0 && maximumSize >= initialSize)
        self.maximumSize = maximumSize
        self.minimumLap = minimumLap
        size = initialSize
        ring = .allocate(byteCount: size, alignment: 16)
    }

    deinit { ring.deallocate() }

    /// The bytes the ring holds now (for memory accounting and tests).
    public var bytesReserved: Int { size }

    /// Writes `bytes` as one run and returns its position; nil (nothing written) for an empty run
    /// or one over 8 kB, which the callers' packets never are.
    public func append(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> UInt64? {
        guard bytes.count > 0, bytes.count <= 8 * 1024, bytes.count <= size, let source = bytes.baseAddress else { return nil }
        var offset = Int(head % UInt64(size))
        if offset + bytes.count > size {
            head += UInt64(size - offset)
            offset = 0
        }
        if offset == 0 {
            let started = lapStartedAt
            lapStartedAt = now
            if let started, now - min(now, started) < minimumLap, size < maximumSize {
                grow()
                offset = Int(head % UInt64(size))
                // Partway into the bigger ring: the lap measured next is a whole one.
                if offset != 0 { lapStartedAt = nil }
            }
        }
        (ring + offset).copyMemory(from: source, byteCount: bytes.count)
        let position = head
        head += UInt64(bytes.count)
        return position
    }

    /// The `count` bytes of the run at `position`, while they are still there.
    public func bytes(at position: UInt64, count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, position >= validFrom, position <= head, head - position <= UInt64(size),
            UInt64(count) <= head - position
        else { return nil }
        let offset = Int(position % UInt64(size))
        guard offset + count <= size else { return nil }
        return UnsafeRawBufferPointer(start: ring + offset, count: count)
    }

    /// Doubles the ring, keeping the bytes it holds at their positions.
    private func grow() {
        let newSize = size * 2
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newSize, alignment: 16)
        // The live bytes are [head - size, head); copy them a contiguous run at a time.
        var position = head - min(head, UInt64(size))
        while position < head {
            let from = Int(position % UInt64(size))
            let to = Int(position % UInt64(newSize))
            let run = min(Int(head - position), size - from, newSize - to)
            (bigger + to).copyMemory(from: ring + from, byteCount: run)
            position += UInt64(run)
        }
        ring.deallocate()
        ring = bigger
        validFrom = head - min(head, UInt64(size))
        size = newSize
    }
}
