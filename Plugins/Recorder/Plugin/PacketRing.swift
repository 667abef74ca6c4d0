import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Fixed slots that carry packets from media threads to the writer thread without allocating or
/// waiting: a producer that finds the ring full drops the packet (and it is counted), so a slow
/// disk never stalls media.
///
/// One consumer (the writer thread). Producers (media threads; the host has one) take a lock of
/// their own, which the consumer never takes.
final class PacketRing: @unchecked Sendable {
    enum Kind: UInt8 { case rtp = 1, rtcp = 2 }

    /// A slot: a 24-byte header, then the packet; 1536 bytes keep every header 16-byte aligned.
    private static let slotSize = 1_536
    private static let headerSize = 24
    static let slotPayload = slotSize - headerSize
    let capacity: Int
    private let memory: UnsafeMutableRawPointer
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)
    private let producers = Mutex(())
    let dropped = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
        memory = .allocate(byteCount: capacity * Self.slotSize, alignment: 16)
    }

    deinit { memory.deallocate() }

    /// [media] Copies a packet in; false (and counted) when full or too large.
    @discardableResult
    func push(stream: UInt64, kind: Kind, arrivalMicros: UInt64, bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= Self.slotPayload, let base = bytes.baseAddress else {
            dropped.add(1, ordering: .relaxed)
            return false
        }
        return producers.withLock { _ in
            let t = tail.load(ordering: .relaxed)
            guard t - head.load(ordering: .acquiring) < capacity else {
                dropped.add(1, ordering: .relaxed)
                return false
            }
            let slot = memory + (t % capacity) * Self.slotSize
            slot.storeBytes(of: stream, as: UInt64.self)
            slot.storeBytes(of: arrivalMicros, toByteOffset: 8, as: UInt64.self)
            slot.storeBytes(of: UInt32(bytes.count), toByteOffset: 16, as: UInt32.self)
            slot.storeBytes(of: kind.rawValue, toByteOffset: 20, as: UInt8.self)
            (slot + Self.headerSize).copyMemory(from: base, byteCount: bytes.count)
            tail.store(t + 1, ordering: .releasing)
            return true
        }
    }

    /// [writer] Hands every waiting packet to `body`, in order, then frees their slots.
    func drain(_ body: (_ stream: UInt64, _ kind: Kind, _ arrivalMicros: UInt64, _ bytes: UnsafeRawBufferPointer) -> Void) {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        guard t > h else { return }
        for i in h..<t {
            let slot = memory + (i % capacity) * Self.slotSize
            let stream = slot.load(as: UInt64.self)
            let arrival = slot.load(fromByteOffset: 8, as: UInt64.self)
            let length = Int(slot.load(fromByteOffset: 16, as: UInt32.self))
            let kind = Kind(rawValue: slot.load(fromByteOffset: 20, as: UInt8.self)) ?? .rtp
            body(stream, kind, arrival, UnsafeRawBufferPointer(start: slot + Self.headerSize, count: length))
        }
        head.store(t, ordering: .releasing)
    }
}
