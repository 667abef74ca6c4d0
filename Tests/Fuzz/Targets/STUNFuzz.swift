import RTC

/// One datagram to the STUN decoder, then the integrity and fingerprint checks an ICE agent or a
/// TURN server runs on it and every attribute accessor. What decodes must encode again, signed,
/// to a message that decodes and verifies with the same key.
public func fuzzSTUN(_ data: UnsafeRawBufferPointer) {
    _ = STUNMessage.looksLikeSTUN(data)
    guard let parsed = try? STUNMessage.parse(Array(data)) else { return }
    let key = Array("fuzz-password".utf8)
    _ = parsed.fingerprintIsValid
    _ = parsed.verifyIntegrity(key: key)
    _ = parsed.verifyIntegrity(key: STUNIntegrity.longTerm(username: "fuzz", realm: "atrium", password: "fuzz-password", sha256: true))
    let message = parsed.message
    for attribute in message.attributes {
        _ = attribute.xorAddress(transactionID: message.transactionID)
        _ = (attribute.mappedAddress, attribute.stringValue, attribute.uint32Value, attribute.uint64Value, attribute.errorCodeValue)
    }

    // Room for the MESSAGE-INTEGRITY-SHA256 and FINGERPRINT the encoder appends, within the 16-bit length.
    guard data.count <= 60_000 else { return }
    for integrity in [STUNIntegrity.sha1(key: key), .sha256(key: key)] {
        let encoded = message.encode(integrity: integrity, fingerprint: true)
        guard let again = try? STUNMessage.parse(encoded) else { fuzzFailure("an encoded message does not parse") }
        guard again.verifyIntegrity(key: key), again.fingerprintIsValid else { fuzzFailure("an encoded message does not verify") }
    }
}
