import CSockets
#if canImport(Glibc)
import Glibc
#endif

/// Reads up to `capacity` datagrams with one `recvmmsg` call: a loop that drains a busy socket
/// pays one system call per batch instead of one per datagram. Every slot, address and header is
/// allocated once (the receiving counterpart of `DatagramBatch`). After `receive`, `datagram(i)`,
/// `wireLength(i)` and `sender(i)` read the batch until the next `receive`.
public final class DatagramReceiver: MessageSlots {
    /// Datagrams read by the last `receive`.
    public private(set) var count = 0

    /// Reads what waits on the non-blocking `fd`, at most `capacity` datagrams; returns how many
    /// (0 when none waits or the call failed). With `prefix`, only each datagram's first `prefix`
    /// bytes are copied out and the kernel drops the rest: for a reader that needs only headers.
    @discardableResult
    public func receive(_ fd: Int32, prefix: Int? = nil) -> Int {
        let length = min(prefix ?? slotSize, slotSize)
        for i in 0..<capacity {
            // The kernel shortens the name length and sets the flags on return: reset both.
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            messages[i].msg_hdr.msg_flags = 0
            vectors[i].iov_len = length
        }
        var n: Int32
        // MSG_TRUNC: each msg_len is the datagram's length on the wire, not what was copied.
        repeat { n = atrium_recvmmsg(fd, messages, UInt32(capacity), Int32(MSG_DONTWAIT | MSG_TRUNC), nil) } while n < 0 && errno == EINTR
        count = max(0, Int(n))
        return count
    }

    /// The `i`th datagram of the last batch as far as it was copied, in its slot (the caller may
    /// rewrite it in place).
    public func datagram(_ i: Int) -> UnsafeMutableRawBufferPointer {
        precondition(i >= 0 && i < count)
        return UnsafeMutableRawBufferPointer(start: buffers + i * slotSize, count: min(wireLength(i), vectors[i].iov_len))
    }

    /// The `i`th datagram's length as sent: more than `datagram(i).count` when it was cut.
    public func wireLength(_ i: Int) -> Int {
        precondition(i >= 0 && i < count)
        return Int(messages[i].msg_len)
    }

    /// Who sent the `i`th datagram (nil for an address family we do not speak).
    public func sender(_ i: Int) -> TransportAddress? {
        precondition(i >= 0 && i < count)
        return SocketAddress.read(addresses + i)
    }
}
