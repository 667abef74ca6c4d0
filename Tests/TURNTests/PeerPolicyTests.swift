import RTC
import Testing
@testable import TURNCore

@Suite struct PeerPolicyTests {
    func ip(_ text: String) throws -> IPAddress { try #require(IPAddress(text), "\(text) is not an address") }
    func cidrs(_ texts: [String]) throws -> [CIDR] { try texts.map { try #require(CIDR($0), "\($0) is not a CIDR") } }

    /// The Teredo address of server 65.54.227.120 (0x4136E378) and a client behind a NAT whose
    /// public side is 127.0.0.1 (stored inverted, as RFC 4380 does: 0x7F000001 ^ 0xFFFFFFFF).
    static let teredoOfLoopbackClient = "2001:0:4136:e378:8000:63bf:80ff:fffe"

    // MARK: CIDR

    @Test(arguments: ["10.0.0.0/33", "::/129", "foo", "10.0.0.0/", "10.0.0.0/-1", "/8", "", "10.0.0.0/+8", "10.0.0.0/ 8",
                      "10.0.0.0/8/8", "10.0.0/8", "10.0.0.0/0x8", "10.0.0.0/1000", "fe80::1%eth0/64"])
    func malformedCIDRsAreNil(text: String) {
        #expect(CIDR(text) == nil, "\(text)")
    }

    @Test func hostBitsAreMaskedOff() throws {
        let c = try #require(CIDR("1.2.3.4/8"))
        let network = try ip("1.0.0.0")
        #expect(c.address == network && c.prefixLength == 8 && c.description == "1.0.0.0/8")
        #expect(c == CIDR("1.0.0.0/8"))
        #expect(CIDR("2001:db8:0:3::/63") == CIDR("2001:db8:0:2::/63"))
        #expect(CIDR("2001:db8::ffff:0:0:1/65") == CIDR("2001:db8::8000:0:0:0/65"))
        #expect(CIDR("2001:db8::ffff:0:0:1/65")?.description == "2001:db8:0:0:8000::/65")
    }

    @Test func aLoneAddressIsAFullLengthBlock() throws {
        for (text, width, below, above) in [("192.0.2.7", 32, "192.0.2.6", "192.0.2.8"), ("2001:db8::7", 128, "2001:db8::6", "2001:db8::8")] {
            let c = try #require(CIDR(text))
            let (address, before, after) = (try ip(text), try ip(below), try ip(above))
            #expect(c.prefixLength == width && c.contains(address) && !c.contains(before) && !c.contains(after), "\(text)")
        }
    }

    @Test func zeroPrefixIsOneWholeFamily() throws {
        let any4 = try #require(CIDR("0.0.0.0/0"))
        for text in ["0.0.0.0", "8.8.8.8", "127.0.0.1", "255.255.255.255"] { #expect(any4.contains(try ip(text)), "\(text)") }
        for text in ["::", "::1", "::ffff:8.8.8.8", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"] { #expect(!any4.contains(try ip(text)), "\(text)") }
        let any6 = try #require(CIDR("::/0"))
        for text in ["::", "::ffff:8.8.8.8", "8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"] { #expect(any6.contains(try ip(text)), "\(text)") }
        for text in ["0.0.0.0", "8.8.8.8"] { #expect(!any6.contains(try ip(text)), "\(text)") }
    }

    /// (block, last address inside, first address outside) for prefixes that do not end on a byte,
    /// or that end exactly at the boundary between the two 64-bit halves.
    @Test(arguments: [
        ("172.16.0.0/12", "172.31.255.255", "172.32.0.0"),
        ("100.64.0.0/10", "100.127.255.255", "100.128.0.0"),
        ("128.0.0.0/1", "255.255.255.255", "127.255.255.255"),
        ("fc00::/7", "fdff:ffff::", "fe00::"),
        ("fc00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fe80::/10", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::"),
        ("2001:db8:0:2::/63", "2001:db8:0:3:ffff:ffff:ffff:ffff", "2001:db8:0:4::"),
        ("2001:db8:0:2::/63", "2001:db8:0:2::", "2001:db8:0:1:ffff:ffff:ffff:ffff"),
        ("2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
        ("2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff", "2001:db8::8000:0:0:0"),
        ("2001:db8::8000:0:0:0/65", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
        ("2001:db8::8000:0:0:0/65", "2001:db8::8000:0:0:0", "2001:db8::7fff:ffff:ffff:ffff"),
        ("2001:db8::/127", "2001:db8::1", "2001:db8::2"),
    ])
    func edgesAreExact(block: String, inside: String, outside: String) throws {
        let c = try #require(CIDR(block))
        #expect(c.contains(try ip(inside)), "\(inside) in \(block)")
        #expect(!c.contains(try ip(outside)), "\(outside) not in \(block)")
    }

    // MARK: Defaults

    @Test(arguments: [
        ("0.0.0.0", "this network"), ("0.1.2.3", "this network"),
        ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::", "unspecified"), ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:7f00:1", "loopback"), ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::1", "loopback"), ("64:ff9b::7f00:1", "loopback"), ("64:ff9b:1::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "RFC 1918"), (PeerPolicyTests.teredoOfLoopbackClient, "loopback"),
        ("2001:0:a00:1:0:0:f7f7:f7f7", "RFC 1918"), // Teredo: server 10.0.0.1, client 8.8.8.8
        ("10.0.0.1", "RFC 1918"), ("10.255.255.255", "RFC 1918"), ("172.16.0.1", "RFC 1918"),
        ("172.31.255.255", "RFC 1918"), ("192.168.1.1", "RFC 1918"), ("::ffff:10.0.0.1", "RFC 1918"),
        ("100.64.0.1", "CGNAT"), ("100.127.255.255", "CGNAT"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("::ffff:169.254.169.254", "link-local"),
        ("fc00::1", "unique local"), ("fd12::1", "unique local"), ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"), ("::ffff:224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
        ("192.0.0.8", "IETF"), ("192.0.2.1", "documentation"), ("198.51.100.1", "documentation"),
        ("203.0.113.1", "documentation"), ("2001:db8::1", "documentation"),
        ("198.18.0.1", "benchmarking"), ("198.19.255.255", "benchmarking"), ("192.88.99.1", "6to4 relay"), ("100::1", "discard"),
        ("2002:c0a8:101::1", "RFC 1918"), // 6to4 of 192.168.1.1
        ("::0.0.0.2", "this network"), // IPv4-compatible, judged as 0.0.0.2
    ])
    func deniedByDefault(address: String, why: String) throws {
        let verdict = PeerPolicy().check(try ip(address))
        guard case .denied(let reason) = verdict else {
            Issue.record("\(address) allowed")
            return
        }
        #expect(reason.contains(why), "\(address): \(reason)")
    }

    @Test(arguments: [
        "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1", "192.0.1.255", "198.20.0.0",
        "223.255.255.255", "2001:4860:4860::8888", "fe00::1", "fe7f:ffff::1", "2001:db9::1", "::ffff:8.8.8.8", "::8.8.8.8",
        "2002:808:808::1", "64:ff9b::808:808", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
    ])
    func allowedByDefault(address: String) throws {
        #expect(PeerPolicy().check(try ip(address)) == .allowed, "\(address)")
    }

    @Test func theDeniedReasonNamesTheCarriedIPv4() throws {
        #expect(PeerPolicy().check(try ip("2002:7f00:1::1")) == .denied("loopback: 2002:7f00:1::1 carries 127.0.0.1 (6to4)"))
        #expect(PeerPolicy().check(try ip("127.0.0.1")) == .denied("loopback"))
    }

    // MARK: Embedded IPv4

    @Test func theTeredoTestAddressIsComputedFromItsParts() throws {
        let client = UInt64(UInt32(0x7F00_0001) ^ 0xFFFF_FFFF)
        let address = IPAddress.v6(0x2001_0000_4136_E378, 0x8000_63BF_0000_0000 | client)
        #expect(address.description == Self.teredoOfLoopbackClient)
    }

    @Test(arguments: [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("::10.1.2.3", ["10.1.2.3"]),
        ("::", []), ("::1", []),
        ("2002:7f00:1::1", ["127.0.0.1"]),
        ("2002:c000:201:1:2:3:4:5", ["192.0.2.1"]),
        ("64:ff9b::a00:1", ["10.0.0.1"]),
        ("64:ff9b:1:2:3:4:a00:1", ["10.0.0.1"]),
        (PeerPolicyTests.teredoOfLoopbackClient, ["65.54.227.120", "127.0.0.1"]),
        ("2001:4860:4860::8888", []), ("2003::a00:1", []), ("64:ff9b:2::a00:1", []), ("8.8.8.8", []),
    ])
    func embeddedIPv4(address: String, expected: [String]) throws {
        #expect(PeerPolicy.embeddedIPv4(try ip(address)).map(\.description) == expected, "\(address)")
    }

    // MARK: Operator lists

    @Test func anAllowedBlockReopensExactlyWhatItCovers() throws {
        let policy = PeerPolicy(allowed: try cidrs(["10.99.0.0/24"]))
        for text in ["10.99.0.7", "10.99.0.255", "::ffff:10.99.0.7", "64:ff9b::a63:7"] {
            #expect(policy.check(try ip(text)) == .allowed, "\(text)")
        }
        for text in ["10.1.2.3", "10.99.1.0", "::ffff:10.1.2.3", "192.168.1.1"] {
            #expect(policy.check(try ip(text)) != .allowed, "\(text)")
        }
    }

    @Test func anAllowedIPv6BlockDoesNotReopenTheIPv4ItCarries() throws {
        let policy = PeerPolicy(allowed: try cidrs(["64:ff9b::/96", "::ffff:0:0/96"]))
        #expect(policy.check(try ip("64:ff9b::a00:1")) != .allowed)
        #expect(policy.check(try ip("::ffff:10.0.0.1")) != .allowed)
    }

    @Test func nothingReopensTheAlwaysDenied() throws {
        let policy = PeerPolicy(allowed: try cidrs(["0.0.0.0/0", "::/0"]))
        for text in ["127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "::1", "ff02::1", "::ffff:127.0.0.1", "2002:7f00:1::1",
                     Self.teredoOfLoopbackClient] {
            #expect(policy.check(try ip(text)) != .allowed, "\(text)")
        }
        for text in ["10.0.0.1", "169.254.169.254", "fc00::1", "::ffff:10.0.0.1"] {
            #expect(policy.check(try ip(text)) == .allowed, "\(text)")
        }
    }

    @Test func deniedWinsOverAllowed() throws {
        let policy = PeerPolicy(allowed: try cidrs(["8.0.0.0/8", "10.0.0.0/8"]), denied: try cidrs(["8.8.8.0/24", "10.0.0.0/24"]))
        #expect(policy.check(try ip("8.8.8.8")) == .denied("denied_peer_ips 8.8.8.0/24"))
        #expect(policy.check(try ip("10.0.0.1")) == .denied("denied_peer_ips 10.0.0.0/24"))
        #expect(policy.check(try ip("8.8.4.4")) == .allowed)
        #expect(policy.check(try ip("10.0.1.1")) == .allowed)
        for text in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            guard case .denied(let reason) = policy.check(try ip(text)) else {
                Issue.record("\(text) allowed")
                continue
            }
            #expect(reason.hasPrefix("denied_peer_ips 8.8.8.0/24"), "\(text): \(reason)")
        }
    }

    @Test func anOperatorCanDenyIPv6() throws {
        let policy = PeerPolicy(denied: try cidrs(["2001:4860::/32"]))
        #expect(policy.check(try ip("2001:4860:4860::8888")) == .denied("denied_peer_ips 2001:4860::/32"))
        #expect(policy.check(try ip("2001:4861::1")) == .allowed)
    }

    // MARK: Tables

    @Test func everyDefaultDeniedBlockIsDeniedAndCanBeReopened() {
        for (block, reason) in PeerPolicy.deniedByDefault {
            #expect(PeerPolicy().check(block.address) == .denied(reason), "\(block)")
            #expect(PeerPolicy(allowed: [block]).check(block.address) == .allowed, "\(block)")
        }
    }

    @Test func everyAlwaysDeniedBlockStaysDenied() {
        for (block, reason) in PeerPolicy.alwaysDenied {
            #expect(PeerPolicy(allowed: [block]).check(block.address) == .denied(reason), "\(block)")
        }
    }
}
