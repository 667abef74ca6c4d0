import NIOCore
import Testing
@testable import Host

/// The key a client's fair shares are counted under, and the ICE restart budget.
@Suite struct ClientAddressTests {
    @Test func ipv4IsKeyedByAddress() throws {
        #expect(ClientAddress(try SocketAddress(ipAddress: "203.0.113.7", port: 5000)).key == "203.0.113.7")
    }

    @Test func ipv6IsKeyedByItsSlash64() throws {
        let a = ClientAddress(try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 5000))
        let b = ClientAddress(try SocketAddress(ipAddress: "2001:db8:1:2:ffff:ffff:ffff:ffff", port: 6000))
        let other = ClientAddress(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 5000))
        #expect(a.key == "2001:db8:1:2::/64")
        #expect(a == b)
        #expect(a != other)
    }

    @Test func ipv4MappedCountsAsIPv4() throws {
        #expect(ClientAddress(try SocketAddress(ipAddress: "::ffff:203.0.113.7", port: 1)).key == "203.0.113.7")
    }

    @Test func noAddressIsUnknown() {
        #expect(ClientAddress(nil) == .unknown)
        #expect(!ClientAddress(nil).isKnown)
    }

    @Test func iceRestartsAreCountedPerMinute() {
        var budget = RestartBudget()
        let minute: UInt64 = 60_000_000_000
        let start: UInt64 = 5 * minute
        var taken: [Bool] = []
        for i in 0..<4 { taken.append(budget.take(now: start + UInt64(i), perMinute: 3)) }
        #expect(taken == [true, true, true, false])
        let nextMinute = budget.take(now: start + minute, perMinute: 3)
        #expect(nextMinute)
        // A clock reading older than the window's start (another thread's) does not trap.
        let older = budget.take(now: start, perMinute: 1)
        #expect(!older)
    }
}
