import CSockets
#if canImport(Glibc)
import Glibc
#endif

/// The memory of a sendmmsg/recvmmsg batch, allocated once: `capacity` slots of `slotSize` bytes,
/// an address and an iovec per slot, and the message headers pointing at them (the address is
/// already attached). The base of `DatagramBatch` and `DatagramReceiver`: its fields are theirs,
/// so the packet path reads them as directly as if each declared its own.
public class MessageSlots {
    public let capacity: Int
    public let slotSize: Int
    let buffers: UnsafeMutableRawPointer
    let addresses: UnsafeMutablePointer<sockaddr_storage>
    let vectors: UnsafeMutablePointer<iovec>
    let messages: UnsafeMutablePointer<atrium_mmsghdr>

    public init(capacity: Int = 64, slotSize: Int = 2_048) {
        precondition(capacity > 0 && slotSize > 0)
        precondition(MemoryLayout<atrium_msghdr>.size == MemoryLayout<msghdr>.size, "struct msghdr layout differs from the shim's")
        self.capacity = capacity
        self.slotSize = slotSize
        buffers = UnsafeMutableRawPointer.allocate(byteCount: capacity * slotSize, alignment: 16)
        addresses = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
        for i in 0..<capacity {
            vectors[i] = iovec(iov_base: buffers + i * slotSize, iov_len: slotSize)
            messages[i] = atrium_mmsghdr()
            messages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            messages[i].msg_hdr.msg_iov = UnsafeMutableRawPointer(vectors + i)
            messages[i].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        buffers.deallocate()
        addresses.deallocate()
        vectors.deallocate()
        messages.deallocate()
    }
}
