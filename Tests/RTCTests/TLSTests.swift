import Foundation
import Testing
@testable import RTC

/// TLS over memory: certificates checked on load (with reasons), a self-signed certificate, and
/// a client and a server connection talking through byte buffers only.
@Suite struct TLSTests {
    static let selfSigned = try! SelfSignedCertificate.generate(addresses: ["10.0.0.5", "2001:db8::5"], hostNames: ["localhost"])
    static let other = try! SelfSignedCertificate.generate(addresses: ["10.0.0.6"], hostNames: [])

    /// Moves bytes between the two until neither has any to send; returns the plaintext each side
    /// received.
    static func shuttle(_ client: TLSConnection, _ server: TLSConnection) -> (client: [UInt8], server: [UInt8]) {
        var atClient: [UInt8] = []
        var atServer: [UInt8] = []
        for _ in 0..<20 {
            let toServer = client.takeOutput()
            let toClient = server.takeOutput()
            if toServer.isEmpty && toClient.isEmpty { break }
            atServer += toServer.withUnsafeBytes { server.receive($0) }.flatMap { $0 }
            atClient += toClient.withUnsafeBytes { client.receive($0) }.flatMap { $0 }
        }
        return (atClient, atServer)
    }

    @Test func handshakeThenDataBothWaysThenCloseNotify() throws {
        let context = try TLSServerContext.load(certificatePEM: Self.selfSigned.certificatePEM, keyPEM: Self.selfSigned.keyPEM)
        let server = try context.accept()
        let client = try TLSConnection.client()
        #expect(Array("early".utf8).withUnsafeBytes { client.send($0) } == false, "nothing is sent before the handshake")
        _ = Self.shuttle(client, server)
        #expect(client.state == .open && server.state == .open)
        #expect(client.peerFingerprint == context.fingerprint)

        let request = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(request.withUnsafeBytes { client.send($0) })
        #expect(big.withUnsafeBytes { server.send($0) })
        let received = Self.shuttle(client, server)
        #expect(received.server == request)
        #expect(received.client == big, "a body larger than a record arrives whole and in order")

        client.close()
        _ = Self.shuttle(client, server)
        #expect(server.state == .closed)
        #expect(Array("more".utf8).withUnsafeBytes { server.receive($0) }.isEmpty)
    }

    @Test func contextNamesItsCertificate() throws {
        let context = try TLSServerContext.load(certificatePEM: Self.selfSigned.certificatePEM, keyPEM: Self.selfSigned.keyPEM)
        #expect(context.fingerprint.split(separator: ":").count == 32)
        #expect(Data(base64Encoded: context.publicKeyHash)?.count == 32)
        let days = context.notAfter.timeIntervalSinceNow / 86_400
        #expect(days > 364 && days < 366)
    }

    @Test func garbageFailsTheHandshakeWithAReason() throws {
        let context = try TLSServerContext.load(certificatePEM: Self.selfSigned.certificatePEM, keyPEM: Self.selfSigned.keyPEM)
        let server = try context.accept()
        let plain = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(plain.withUnsafeBytes { server.receive($0) }.isEmpty)
        guard case .failed(let reason) = server.state else {
            Issue.record("plain HTTP on a TLS port must fail, state \(server.state)")
            return
        }
        #expect(reason.contains("handshake"))
        #expect(plain.withUnsafeBytes { server.receive($0) }.isEmpty, "a failed connection takes nothing more")
    }

    @Test func badMaterialIsRefusedWithTheReason() throws {
        let cert = Self.selfSigned.certificatePEM
        func refusal(_ certificate: [UInt8], _ key: [UInt8], now: Date = Date()) -> String {
            do {
                _ = try TLSServerContext.load(certificatePEM: certificate, keyPEM: key, now: now)
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(refusal(cert, Self.other.keyPEM) == "the key does not belong to the certificate")
        #expect(refusal(cert, Self.selfSigned.keyPEM, now: Date() + 400 * 86_400).hasPrefix("the certificate expired on "))
        #expect(refusal(cert, Self.selfSigned.keyPEM, now: Date() - 2 * 86_400).hasPrefix("the certificate is not valid before "))
        #expect(refusal(Array("not a certificate".utf8), Self.selfSigned.keyPEM) == "no PEM certificate in the certificate file")
        #expect(refusal(cert, Array("not a key".utf8)).hasPrefix("the key file holds no PEM private key"))
        #expect(refusal([], []) == "no PEM certificate in the certificate file")
    }

    @Test func filesThatCannotBeReadAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certificate = dir + "/fullchain.pem"
        let key = dir + "/privkey.pem"
        #expect(throws: TLSError("\(certificate): cannot be read (missing or not permitted)")) {
            try TLSServerContext.load(certificateFile: certificate, keyFile: key)
        }
        _ = FileManager.default.createFile(atPath: certificate, contents: Data(Self.selfSigned.certificatePEM))
        _ = FileManager.default.createFile(atPath: key, contents: Data(Self.other.keyPEM))
        #expect(throws: TLSError("\(certificate) with \(key): the key does not belong to the certificate")) {
            try TLSServerContext.load(certificateFile: certificate, keyFile: key)
        }
        // A chain (leaf, then another certificate) loads, and the leaf is what is named.
        _ = FileManager.default.createFile(atPath: certificate, contents: Data(Self.selfSigned.certificatePEM + Self.other.certificatePEM))
        _ = FileManager.default.createFile(atPath: key, contents: Data(Self.selfSigned.keyPEM))
        let context = try TLSServerContext.load(certificateFile: certificate, keyFile: key)
        let alone = try TLSServerContext.load(certificatePEM: Self.selfSigned.certificatePEM, keyPEM: Self.selfSigned.keyPEM)
        #expect(context.fingerprint == alone.fingerprint)
    }

    @Test func selfSignedNeedsSomethingToNameAndRefusesJunk() {
        #expect(throws: TLSError("a self-signed certificate needs an address or a name")) {
            try SelfSignedCertificate.generate(addresses: [], hostNames: [])
        }
        #expect(throws: TLSError("\"10.0.0.999\" is not an IP address")) {
            try SelfSignedCertificate.generate(addresses: ["10.0.0.999"], hostNames: [])
        }
        #expect(throws: TLSError("\"a,DNS:b\" is not a host name")) {
            try SelfSignedCertificate.generate(addresses: [], hostNames: ["a,DNS:b"])
        }
    }
}
