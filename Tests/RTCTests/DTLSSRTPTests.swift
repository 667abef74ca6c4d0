import Foundation
import Testing
@testable import RTC

/// DTLS-SRTP between two in-process endpoints: the handshake, the fingerprint check, key export
/// into SRTP, retransmission, and bad input.
@Suite struct DTLSSRTPTests {
    static let serverCertificate = try! DTLSCertificate.generate(commonName: "server")
    static let clientCertificate = try! DTLSCertificate.generate(commonName: "client")

    /// Shuttles datagrams between two transports until neither has anything to say.
    static func handshake(_ client: DTLSTransport, _ server: DTLSTransport, drop: (Int) -> Bool = { _ in false }) {
        var toServer = client.start()
        var toClient: [[UInt8]] = []
        var n = 0
        for _ in 0..<50 {
            for d in toServer {
                n += 1
                if !drop(n) { toClient += server.receive(d) }
            }
            toServer = []
            for d in toClient { toServer += client.receive(d) }
            toClient = []
            if toServer.isEmpty { break }
        }
    }

    static func rtp(seq: UInt16, ssrc: UInt32 = 0x1234_5678, payload: [UInt8] = Array(repeating: 0xAB, count: 160)) -> [UInt8] {
        [0x80, 111, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, 0x10, 0x00,
         UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)] + payload
    }

    @Test(arguments: [SRTPProfile.aeadAES128GCM, .aes128CMHMACSHA1_80])
    func handshakeExportsMatchingKeysAndSRTPFlows(profile: SRTPProfile) throws {
        let client = try DTLSTransport(role: .client, certificate: Self.clientCertificate, remoteFingerprint: Self.serverCertificate.fingerprint, profiles: [profile])
        let server = try DTLSTransport(role: .server, certificate: Self.serverCertificate, remoteFingerprint: Self.clientCertificate.fingerprint)
        Self.handshake(client, server)
        #expect(client.state == .connected && server.state == .connected)
        let c = try #require(client.keys)
        let s = try #require(server.keys)
        #expect(c.profile == profile && s.profile == profile)
        #expect(c.localKey == s.remoteKey && c.localSalt == s.remoteSalt && c.remoteKey == s.localKey)
        #expect(c.localKey != c.remoteKey)

        let send = try c.outbound()
        let receive = try s.inbound()
        for seq in UInt16(1)...50 {
            let plain = Self.rtp(seq: seq)
            let protected = try send.protect(plain)
            #expect(protected.count > plain.count && protected[12...] != plain[12...])
            #expect(try receive.unprotect(protected) == plain)
        }
        // A replay is refused; a tampered packet fails authentication.
        let again = try send.protect(Self.rtp(seq: 60))
        _ = try receive.unprotect(again)
        #expect(throws: SRTPError.self) { try receive.unprotect(again) }
        var tampered = try send.protect(Self.rtp(seq: 61))
        tampered[20] ^= 1
        #expect(throws: SRTPError.self) { try receive.unprotect(tampered) }
        // SRTCP both ways (a receiver report).
        let rr: [UInt8] = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78]
        let back = try s.outbound()
        let protectedRTCP = try back.protect(rr, rtcp: true)
        #expect(try c.inbound().unprotect(protectedRTCP, rtcp: true) == rr)
    }

    @Test func aWrongFingerprintFailsTheHandshake() throws {
        let other = try DTLSCertificate.generate()
        let client = try DTLSTransport(role: .client, certificate: Self.clientCertificate, remoteFingerprint: other.fingerprint)
        let server = try DTLSTransport(role: .server, certificate: Self.serverCertificate, remoteFingerprint: nil)
        Self.handshake(client, server)
        guard case .failed(let reason) = client.state else {
            Issue.record("client state \(client.state)")
            return
        }
        #expect(reason.contains("fingerprint"))
        #expect(client.keys == nil)
    }

    @Test func aLostFlightIsRetransmitted() throws {
        let client = try DTLSTransport(role: .client, certificate: Self.clientCertificate, remoteFingerprint: nil)
        let server = try DTLSTransport(role: .server, certificate: Self.serverCertificate, remoteFingerprint: nil)
        _ = client.start()  // the ClientHello is lost
        #expect(client.timeoutMilliseconds != nil)
        // Force the timer: wait it out, then retransmit.
        let wait = client.timeoutMilliseconds ?? 1000
        Thread.sleep(forTimeInterval: Double(wait + 50) / 1000)
        let resent = client.handleTimeout()
        #expect(!resent.isEmpty)
        var toClient: [[UInt8]] = []
        for d in resent { toClient += server.receive(d) }
        var toServer: [[UInt8]] = []
        for _ in 0..<10 {
            for d in toClient { toServer += client.receive(d) }
            toClient = []
            for d in toServer { toClient += server.receive(d) }
            toServer = []
            if client.state == .connected && server.state == .connected { break }
        }
        #expect(client.state == .connected && server.state == .connected)
    }

    @Test func garbageDatagramsDoNotCrashOrConnect() throws {
        let server = try DTLSTransport(role: .server, certificate: Self.serverCertificate, remoteFingerprint: nil)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let length = Int.random(in: 0...300, using: &generator)
            var d = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if !d.isEmpty { d[0] = 22 }  // looks like a handshake record
            _ = server.receive(d)
        }
        #expect(server.state != .connected)
        #expect(server.keys == nil)
    }

    @Test func closeNotifyClosesThePeer() throws {
        let client = try DTLSTransport(role: .client, certificate: Self.clientCertificate, remoteFingerprint: nil)
        let server = try DTLSTransport(role: .server, certificate: Self.serverCertificate, remoteFingerprint: nil)
        Self.handshake(client, server)
        for d in client.close() { _ = server.receive(d) }
        #expect(client.state == .closed && server.state == .closed)
    }

    @Test func certificatesAreP256WithSHA256Fingerprints() throws {
        let fp = Self.serverCertificate.fingerprint
        #expect(fp.split(separator: ":").count == 32)
        #expect(fp != Self.clientCertificate.fingerprint)
    }
}

