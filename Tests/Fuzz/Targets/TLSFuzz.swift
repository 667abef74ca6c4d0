import RTC

/// What a stranger can send to an HTTPS or WSS port, into a server-side `TLSConnection`. The
/// first byte picks the phase: even, the bytes are the connection's first (ClientHello and
/// whatever follows); odd, a real client first completes the handshake and the bytes follow it as
/// records. The rest is fed in pieces whose sizes the input gives, as TCP may cut it. Whatever
/// comes: no trap; nothing sent before the handshake ends; a failed or closed connection takes no
/// more; and after a real handshake, a sentence sent through it still arrives whole unless the
/// input broke the connection.
public func fuzzTLS(_ data: UnsafeRawBufferPointer) {
    guard let context = TLSFuzzContext.shared, let server = try? context.accept() else { fuzzFailure("no TLS context") }
    var input = FuzzInput(data)
    let afterHandshake = input.byte() & 1 == 1
    if afterHandshake {
        guard let client = try? TLSConnection.client() else { fuzzFailure("no TLS client") }
        for _ in 0..<10 {
            let toServer = client.takeOutput()
            let toClient = server.takeOutput()
            if toServer.isEmpty && toClient.isEmpty { break }
            _ = toServer.withUnsafeBytes { server.receive($0) }
            _ = toClient.withUnsafeBytes { client.receive($0) }
        }
        guard server.state == .open, client.state == .open else { fuzzFailure("a real handshake did not open") }
    }
    while !input.isEmpty {
        let piece = input.take(Int(input.byte()) * 16 + 1)
        let before = server.state
        let plaintext = server.receive(piece)
        if before != .handshaking && before != .open && !plaintext.isEmpty { fuzzFailure("a closed connection took bytes") }
        if !plaintext.isEmpty && !afterHandshake && server.state == .handshaking { fuzzFailure("plaintext before the handshake ended") }
        _ = server.takeOutput()
    }
    let sentence = Array("the meeting goes on".utf8)
    let sent = sentence.withUnsafeBytes { server.send($0) }
    if sent != (server.state == .open) { fuzzFailure("send accepted in state \(server.state)") }
}

/// One certificate for every input: making a key per input would be most of the run.
enum TLSFuzzContext {
    static let shared: TLSServerContext? = {
        guard let made = try? SelfSignedCertificate.generate(addresses: ["127.0.0.1"], hostNames: ["localhost"]) else { return nil }
        return try? TLSServerContext.load(certificatePEM: made.certificatePEM, keyPEM: made.keyPEM)
    }()
}
