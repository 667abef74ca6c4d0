import AtriumJSON
import NIOCore
import Testing
@testable import Host

/// The fair shares per client address, driven with explicit times.
@Suite struct ClientSharesTests {
    static let attacker = ClientAddress(key: "192.0.2.1")
    static let victim = ClientAddress(key: "192.0.2.2")
    static let second: UInt64 = 1_000_000_000

    func shares(_ edit: (inout HostConfig.Limits) -> Void = { _ in }) -> ClientShares {
        var limits = HostConfig.Limits()
        edit(&limits)
        return ClientShares(limits: ClientShares.Limits(limits))
    }

    @Test func anAddressAtItsSessionShareLeavesOthersTheirs() {
        let s = shares { $0.sessionsPerAddress = 3 }
        for _ in 0..<3 { #expect(s.reserveSession(Self.attacker, now: 0)) }
        #expect(!s.reserveSession(Self.attacker, now: 0))
        #expect(s.reserveSession(Self.victim, now: 0))
        s.releaseSession(Self.attacker, now: 0)
        #expect(s.reserveSession(Self.attacker, now: 0))
    }

    @Test func handlesAreCountedPerAddress() {
        let s = shares { $0.handlesPerAddress = 2 }
        #expect(s.reserveHandle(Self.attacker) && s.reserveHandle(Self.attacker))
        #expect(!s.reserveHandle(Self.attacker))
        #expect(s.reserveHandle(Self.victim))
    }

    @Test func connectionsHaveAPerAddressAndATotalCap() {
        let s = shares {
            $0.httpConnectionsPerAddress = 2
            $0.maxHTTPConnections = 3
            $0.webSocketConnectionsPerAddress = 1
        }
        #expect(s.openConnection(Self.attacker, .http) == nil)
        #expect(s.openConnection(Self.attacker, .http) == nil)
        #expect(s.openConnection(Self.attacker, .http) == .addressCap)
        // The WebSocket count is separate from the HTTP one.
        #expect(s.openConnection(Self.attacker, .webSocket) == nil)
        #expect(s.openConnection(Self.attacker, .webSocket) == .addressCap)
        #expect(s.openConnection(Self.victim, .http) == nil)
        #expect(s.openConnection(ClientAddress(key: "192.0.2.3"), .http) == .totalCap)
        s.closeConnection(Self.attacker, .http)
        #expect(s.openConnection(Self.attacker, .http) == nil)
        #expect(s.snapshot.httpConnections == 3 && s.snapshot.webSocketConnections == 1)
    }

    @Test func theRequestBucketSpansAnAddressesConnections() {
        let s = shares {
            $0.addressRequestsPerSecond = 10
            $0.addressBurst = 5
        }
        _ = s.openConnection(Self.attacker, .http, now: 0)
        _ = s.openConnection(Self.attacker, .webSocket, now: 0)
        _ = s.openConnection(Self.victim, .http, now: 0)
        let taken = (0..<10).filter { i in s.takeRequest(Self.attacker, now: 0) }.count
        #expect(taken == 5)
        #expect(s.takeRequest(Self.victim, now: 0))
        // A tenth of a second refills one request at 10 a second.
        #expect(s.takeRequest(Self.attacker, now: Self.second / 10))
        #expect(!s.takeRequest(Self.attacker, now: Self.second / 10))
    }

    @Test func reconnectingDoesNotRefillTheBucket() {
        let s = shares {
            $0.addressRequestsPerSecond = 1
            $0.addressBurst = 3
        }
        _ = s.openConnection(Self.attacker, .http, now: 0)
        for _ in 0..<3 { #expect(s.takeRequest(Self.attacker, now: 0)) }
        s.closeConnection(Self.attacker, .http, now: 0)
        s.sweep(now: 0)
        _ = s.openConnection(Self.attacker, .http, now: 0)
        #expect(!s.takeRequest(Self.attacker, now: 0))
    }

    @Test func theTableForgetsAddressesThatHoldNothing() {
        let s = shares { $0.addressBurst = 2 }
        _ = s.openConnection(Self.attacker, .http, now: 0)
        #expect(s.reserveSession(Self.attacker, now: 0))
        s.closeConnection(Self.attacker, .http, now: 0)
        #expect(s.snapshot.addresses == 1)  // its session still counts
        s.releaseSession(Self.attacker, now: 0)
        #expect(s.snapshot.addresses == 0)  // bucket full, nothing held: gone at once
        _ = s.openConnection(Self.victim, .http, now: 0)
        #expect(s.takeRequest(Self.victim, now: 0))
        s.closeConnection(Self.victim, .http, now: 0)
        #expect(s.snapshot.addresses == 1)  // kept until its bucket refills
        s.sweep(now: Self.second)
        #expect(s.snapshot.addresses == 0)
    }

    @Test func theTableIsBounded() {
        let s = shares { $0.maxAddresses = 2 }
        #expect(s.openConnection(ClientAddress(key: "192.0.2.10"), .http) == nil)
        #expect(s.reserveSession(ClientAddress(key: "192.0.2.11")))
        #expect(s.openConnection(ClientAddress(key: "192.0.2.12"), .http) == .tooManyAddresses)
        #expect(!s.reserveSession(ClientAddress(key: "192.0.2.12")))
        // Known addresses keep their shares.
        #expect(s.openConnection(ClientAddress(key: "192.0.2.11"), .http) == nil)
    }

    @Test func inProcessRequestsAreNotCounted() {
        let s = shares {
            $0.sessionsPerAddress = 1
            $0.addressBurst = 1
        }
        for _ in 0..<5 {
            #expect(s.reserveSession(.unknown))
            #expect(s.takeRequest(.unknown))
        }
        #expect(s.snapshot.addresses == 0)
    }
}

@Suite struct HostileInputTests {
    @Test func theTransactionIsFoundWithoutParsing() {
        #expect(scanTransaction(Array(#"{"janus":"ping","transaction":"abc"}"#.utf8)) == "abc")
        // janus.js puts it after the body; a nested "transaction" is not the request's.
        let message = #"{"janus":"message","body":{"transaction":"inner","text":"\"transaction\":\"fake\""},"transaction" : "outer","jsep":{}}"#
        #expect(scanTransaction(Array(message.utf8)) == "outer")
        #expect(scanTransaction(Array(#"{"transaction":"a\"b"}"#.utf8)) == "a\"b")
        #expect(scanTransaction(Array(#"{"transaction":5}"#.utf8)) == nil)
        #expect(scanTransaction(Array("{\"transaction\":\"x".utf8)) == nil)
        #expect(scanTransaction(Array("[[[[".utf8)) == nil)
        // Past the bound it gives up rather than read on.
        let padded = #"{"body":""# + String(repeating: "x", count: 20_000) + #"","transaction":"late"}"#
        #expect(scanTransaction(Array(padded.utf8)) == nil)
        #expect(scanTransaction(Array(padded.utf8), limit: 1 << 20) == "late")
    }

    @Test func aSessionQueueIsBoundedInBytes() throws {
        let queue = LongPollQueue(capacity: 1_000, byteCapacity: 10_000)
        let event: JSON = ["janus": "event", "text": .string(String(repeating: "y", count: 1_000))]
        let size = event.serialized.utf8.count
        for _ in 0..<100 { queue.push(event) }
        let usage = queue.usage
        #expect(usage.bytes <= 10_000 && usage.bytes > 10_000 - size)
        #expect(usage.dropped == UInt64(100 - usage.bytes / size))
        // The newest event stays even when it alone is over the bound.
        let big: JSON = ["janus": "event", "text": .string(String(repeating: "z", count: 20_000))]
        queue.push(big)
        #expect(queue.takeAll() == [big])
        #expect(queue.usage.bytes == 0)
    }

    @Test func addressPrefixesMatchAsWritten() throws {
        let loopback = try #require(AddressPrefix("127.0.0.0/8"))
        let v6 = try #require(AddressPrefix("::1/128"))
        let lan = try #require(AddressPrefix("10.99.0.0/23"))
        let one = try #require(AddressPrefix("192.0.2.7"))
        #expect(loopback.contains(try SocketAddress(ipAddress: "127.0.0.2", port: 1)))
        #expect(!loopback.contains(try SocketAddress(ipAddress: "10.99.0.1", port: 1)))
        #expect(loopback.contains(try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 1)))
        #expect(v6.contains(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(!v6.contains(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
        #expect(lan.contains(try SocketAddress(ipAddress: "10.99.1.200", port: 1)))
        #expect(!lan.contains(try SocketAddress(ipAddress: "10.99.2.1", port: 1)))
        #expect(one.contains(try SocketAddress(ipAddress: "192.0.2.7", port: 1)))
        #expect(!one.contains(try SocketAddress(ipAddress: "192.0.2.8", port: 1)))
        #expect(!loopback.contains(nil))
        #expect(lan.description == "10.99.0.0/23")
        for bad in ["localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "/8", ""] {
            #expect(AddressPrefix(bad) == nil, "\(bad)")
        }
    }
}
