import CSockets
#if canImport(Glibc)
import Glibc
#endif

/// Datagrams queued for one `sendmmsg` call: a forwarder that sends one packet to many receivers
/// pays one system call for the lot instead of one each. Every slot, address and header is
/// allocated once; `append` copies the bytes in, `flush` hands them to the kernel.
/// The corresponding C call is sendmmsg (Linux).
public final class DatagramBatch: MessageSlots {
    /// Datagrams waiting.
    public private(set) var count = 0
    /// Send IPv4 addresses IPv4-mapped: the batch is flushed on a dual-stack IPv6 socket.
    public var mapsIPv4 = false

    /// Queues a copy of `bytes` for `address`, sending the queue on `fd` first when it is full.
    /// Returns false (and queues nothing) for a datagram larger than a slot.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer, to address: TransportAddress, on fd: Int32) -> Bool {
        guard bytes.count <= slotSize else { return false }
        let slot = reserve(on: fd)
        if let base = bytes.baseAddress { slot.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
        commit(bytes.count, to: address)
        return true
    }

    /// The next slot, to build a datagram in place (the queue is sent on `fd` first when it is
    /// full); `commit` queues what was written there. Nothing is queued until then.
    public func reserve(on fd: Int32) -> UnsafeMutableRawBufferPointer {
        if count == capacity { flush(fd) }
        return UnsafeMutableRawBufferPointer(start: buffers + count * slotSize, count: slotSize)
    }

    /// Queues the first `length` bytes of the slot `reserve` gave, for `address`.
    public func commit(_ length: Int, to address: TransportAddress) {
        precondition(count < capacity && length >= 0 && length <= slotSize)
        vectors[count].iov_len = length
        messages[count].msg_hdr.msg_namelen = SocketAddress.write(address, into: addresses + count, mapIPv4: mapsIPv4)
        count += 1
    }

    /// Sends everything queued on `fd`. Returns how many datagrams the kernel refused (a full
    /// socket buffer drops the rest of the batch rather than wait: media late is media lost).
    @discardableResult
    public func flush(_ fd: Int32) -> Int {
        var sent = 0
        var refused = 0
        while sent + refused < count {
            let start = sent + refused
            let n = atrium_sendmmsg(fd, messages + start, UInt32(count - start), Int32(MSG_NOSIGNAL))
            if n > 0 {
                sent += Int(n)
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                refused = count - sent
            } else {
                // This one datagram was refused (unreachable, too big): skip it, send the rest.
                refused += 1
            }
        }
        count = 0
        return refused
    }
}
