import NIOCore
import NIOHTTP1
import Testing
@testable import Host

/// Whose address a request is counted against behind reverse proxies: X-Forwarded-For believed
/// from trusted proxies only, read from the right, never past a malformed entry.
@Suite struct ProxyTrustTests {
    let trust = ProxyTrust(proxies: [AddressPrefix("127.0.0.1/32")!, AddressPrefix("10.1.0.0/16")!])
    let proxy = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)

    func client(_ forwarded: [String], peer: SocketAddress? = nil) -> String? {
        var headers = HTTPHeaders()
        for value in forwarded { headers.add(name: "X-Forwarded-For", value: value) }
        return trust.client(peer: peer ?? proxy, headers: headers)?.ipAddress
    }

    @Test func theRightMostAddressThatIsNotAProxyIsTheClient() {
        #expect(client(["198.51.100.7"]) == "198.51.100.7")
        // What a client writes comes first; nginx appends the address it saw.
        #expect(client(["127.0.0.1, 198.51.100.7"]) == "198.51.100.7")
        // A second proxy of ours in the chain is skipped.
        #expect(client(["198.51.100.7, 10.1.2.3"]) == "198.51.100.7")
        #expect(client(["198.51.100.7", "10.1.2.3"]) == "198.51.100.7", "several header lines read as one list")
        #expect(client(["[2001:db8::7]"]) == "2001:db8::7")
        #expect(client(["10.1.2.3"]) == "10.1.2.3", "only proxies: the farthest of them")
    }

    @Test func noHeaderOrAMalformedEntryLeavesTheProxy() {
        #expect(client([]) == "127.0.0.1")
        #expect(client(["198.51.100.7, not-an-address"]) == "127.0.0.1")
        #expect(client(["198.51.100.7, 198.51.100.8:443"]) == "127.0.0.1")
        #expect(client([""]) == "127.0.0.1")
    }

    @Test func fromAnyoneElseTheHeaderIsIgnored() throws {
        let stranger = try SocketAddress(ipAddress: "203.0.113.9", port: 5000)
        #expect(client(["127.0.0.1"], peer: stranger) == "203.0.113.9")
        #expect(!ProxyTrust(proxies: []).isTrusted(proxy))
    }

    @Test func aLongChainIsReadOnlyAsFarAsTheBound() {
        let chain = ["198.51.100.1"] + Array(repeating: "10.1.0.1", count: ProxyTrust.maxHops + 4)
        #expect(client([chain.joined(separator: ", ")]) == "10.1.0.1")
    }
}
