import CSockets
#if canImport(Glibc)
import Glibc
#endif

/// An epoll(7) set: descriptors registered once, each with a token of the owner's choosing, and a
/// wait that returns only the ready ones. A loop over many sockets (one per peer or per relay)
/// pays for what is ready instead of scanning every descriptor on each turn as poll(2) does.
/// Level-triggered: a descriptor not drained is reported again.
public final class EventPoll {
    public let capacity: Int
    private let epoll: Int32
    private let events: UnsafeMutablePointer<atrium_epoll_event>
    /// Ready descriptors from the last `wait`.
    public private(set) var count = 0

    /// `capacity`: the most ready descriptors one `wait` returns (the rest come on the next).
    public init(capacity: Int = 256) throws(SocketError) {
        precondition(capacity > 0)
        let fd = atrium_epoll_create1(Int32(O_CLOEXEC))
        guard fd >= 0 else { throw SocketError("epoll_create1") }
        epoll = fd
        self.capacity = capacity
        events = .allocate(capacity: capacity)
    }

    deinit {
        close(epoll)
        events.deallocate()
    }

    /// Watches `fd` for reading; `wait` reports it with `token`.
    public func add(_ fd: Int32, token: UInt64) throws(SocketError) {
        var event = atrium_epoll_event(events: 0x001 /* EPOLLIN */, data: token)
        guard atrium_epoll_ctl(epoll, 1 /* EPOLL_CTL_ADD */, fd, &event) == 0 else { throw SocketError("epoll_ctl") }
    }

    /// Stops watching `fd` (closing it does too).
    public func remove(_ fd: Int32) {
        var event = atrium_epoll_event(events: 0, data: 0)
        _ = atrium_epoll_ctl(epoll, 2 /* EPOLL_CTL_DEL */, fd, &event)
    }

    /// Waits up to `milliseconds` (-1: until one is ready) and returns how many are ready.
    @discardableResult
    public func wait(milliseconds: Int32) -> Int {
        let n = atrium_epoll_wait(epoll, events, Int32(capacity), milliseconds)
        count = max(0, Int(n))
        return count
    }

    /// The token of the `i`th ready descriptor of the last `wait`.
    public func token(_ i: Int) -> UInt64 {
        precondition(i >= 0 && i < count)
        return events[i].data
    }
}
