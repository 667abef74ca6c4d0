import COpenSSL

/// How a message is authenticated: the short-term (ICE) or long-term (TURN) key, with SHA-1
/// (MESSAGE-INTEGRITY) or SHA-256 (MESSAGE-INTEGRITY-SHA256).
public enum STUNIntegrity: Sendable {
    case sha1(key: [UInt8])
    case sha256(key: [UInt8])

    /// The short-term credential key: the password itself (RFC 8489 §9.1.1, no SASLprep here).
    public static func shortTerm(password: String) -> STUNIntegrity { .sha1(key: Array(password.utf8)) }
}

/// A parsed message together with its bytes, so integrity and fingerprint can be checked.
public struct ParsedSTUNMessage: Sendable {
    public var message: STUNMessage
    public var raw: [UInt8]
    /// Offset of the MESSAGE-INTEGRITY / -SHA256 / FINGERPRINT attribute headers, if present.
    public var integrityOffset: Int?
    public var integritySHA256Offset: Int?
    public var fingerprintOffset: Int?

    /// Whether MESSAGE-INTEGRITY (SHA-1) or, failing that, MESSAGE-INTEGRITY-SHA256 verifies with
    /// `key`. Constant-time comparison.
    public func verifyIntegrity(key: [UInt8]) -> Bool {
        if let offset = integrityOffset {
            return verify(at: offset, key: key, sha256: false)
        }
        if let offset = integritySHA256Offset {
            return verify(at: offset, key: key, sha256: true)
        }
        return false
    }

    private func verify(at offset: Int, key: [UInt8], sha256: Bool) -> Bool {
        let valueLength = Int(raw.bigEndianUInt16(at: offset + 2))
        guard offset + 4 + valueLength <= raw.count else { return false }
        var covered = Array(raw[0..<offset])
        covered.storeBigEndian(UInt16(offset - STUNMessage.headerLength + 4 + valueLength), at: 2)
        let mac = STUNCrypto.hmac(sha256: sha256, key: key, data: covered)
        let received = raw[(offset + 4)..<(offset + 4 + valueLength)]
        guard received.count <= mac.count, received.count >= (sha256 ? 16 : 20) else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(received, mac) { diff |= a ^ b }
        return diff == 0
    }

    /// Whether the FINGERPRINT attribute is present and right.
    public var fingerprintIsValid: Bool {
        guard let offset = fingerprintOffset, offset + 8 == raw.count else { return false }
        let expected = STUNCrypto.crc32(raw[0..<offset]) ^ 0x5354_554E
        return expected == raw.bigEndianUInt32(at: offset + 4)
    }
}

extension STUNMessage {
    /// Parses a STUN message. Refuses anything malformed: wrong leading bits, bad cookie, a length
    /// that disagrees with the datagram, attributes overrunning the message, FINGERPRINT not last.
    public static func parse(_ bytes: [UInt8]) throws(STUNError) -> ParsedSTUNMessage {
        let count = bytes.count
        guard count >= headerLength else { throw STUNError("shorter than the 20-byte header") }
        guard bytes[0] & 0xC0 == 0 else { throw STUNError("the first two bits are not zero") }
        let type = bytes.bigEndianUInt16(at: 0)
        let length = Int(bytes.bigEndianUInt16(at: 2))
        guard length % 4 == 0 else { throw STUNError("length \(length) is not a multiple of 4") }
        guard length + headerLength == count else {
            throw STUNError("length \(length) disagrees with the \(count - headerLength) bytes after the header")
        }
        guard bytes.bigEndianUInt32(at: 4) == magicCookie else { throw STUNError("no magic cookie") }
        let transaction = STUNTransactionID(bytes.bigEndianUInt32(at: 8), bytes.bigEndianUInt32(at: 12), bytes.bigEndianUInt32(at: 16))
        let messageClass = STUNClass(rawValue: UInt8(((type >> 4) & 1) | ((type >> 7) & 2)))!
        let method = STUNMethod(rawValue: (type & 0x000F) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0F80))

        var attributes: [STUNAttribute] = []
        var integrity: Int?
        var integrity256: Int?
        var fingerprint: Int?
        var offset = headerLength
        while offset < count {
            guard offset + 4 <= count else { throw STUNError("truncated attribute header at \(offset)") }
            let attrType = STUNAttributeType(rawValue: bytes.bigEndianUInt16(at: offset))
            let attrLength = Int(bytes.bigEndianUInt16(at: offset + 2))
            let valueStart = offset + 4
            guard valueStart + attrLength <= count else {
                throw STUNError("attribute \(attrType) of \(attrLength) bytes overruns the message")
            }
            if fingerprint != nil { throw STUNError("attribute after FINGERPRINT") }
            let afterIntegrity = integrity != nil || integrity256 != nil
            switch attrType {
            case .fingerprint:
                guard attrLength == 4 else { throw STUNError("FINGERPRINT of \(attrLength) bytes") }
                fingerprint = offset
            case .messageIntegrity:
                guard attrLength == 20 else { throw STUNError("MESSAGE-INTEGRITY of \(attrLength) bytes") }
                if !afterIntegrity { integrity = offset }
            case .messageIntegritySHA256:
                guard attrLength >= 16 && attrLength <= 32 && attrLength % 4 == 0 else {
                    throw STUNError("MESSAGE-INTEGRITY-SHA256 of \(attrLength) bytes")
                }
                if integrity256 == nil { integrity256 = offset }
            default:
                break
            }
            // Attributes after the integrity (other than those above) are ignored, as RFC 8489 says.
            if !afterIntegrity || attrType == .fingerprint || attrType == .messageIntegritySHA256 {
                attributes.append(STUNAttribute(type: attrType, value: Array(bytes[valueStart..<(valueStart + attrLength)])))
            }
            offset = valueStart + ((attrLength + 3) & ~3)
        }
        guard offset == count else { throw STUNError("attribute padding overruns the message") }
        let message = STUNMessage(method: method, messageClass: messageClass, transactionID: transaction, attributes: attributes)
        return ParsedSTUNMessage(message: message, raw: bytes, integrityOffset: integrity, integritySHA256Offset: integrity256, fingerprintOffset: fingerprint)
    }

    /// The wire bytes, with MESSAGE-INTEGRITY (if `integrity` is given) and FINGERPRINT appended.
    /// Any integrity or fingerprint attributes already in `attributes` are not written twice.
    public func encode(integrity: STUNIntegrity? = nil, fingerprint: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        let type = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
        out.appendBigEndian(type)
        out.appendBigEndian(UInt16(0))
        out.appendBigEndian(STUNMessage.magicCookie)
        out.appendBigEndian(transactionID.bytes.0)
        out.appendBigEndian(transactionID.bytes.1)
        out.appendBigEndian(transactionID.bytes.2)
        for a in attributes where a.type != .messageIntegrity && a.type != .messageIntegritySHA256 && a.type != .fingerprint {
            Self.append(a.type, a.value, to: &out)
        }
        if let integrity {
            let (type, sha256, key): (STUNAttributeType, Bool, [UInt8]) = switch integrity {
            case .sha1(let key): (.messageIntegrity, false, key)
            case .sha256(let key): (.messageIntegritySHA256, true, key)
            }
            let macLength = sha256 ? 32 : 20
            out.storeBigEndian(UInt16(out.count - STUNMessage.headerLength + 4 + macLength), at: 2)
            let mac = STUNCrypto.hmac(sha256: sha256, key: key, data: out)
            Self.append(type, mac, to: &out)
        }
        if fingerprint {
            out.storeBigEndian(UInt16(out.count - STUNMessage.headerLength + 8), at: 2)
            let crc = STUNCrypto.crc32(out[...]) ^ 0x5354_554E
            var value: [UInt8] = []
            value.appendBigEndian(crc)
            Self.append(.fingerprint, value, to: &out)
        }
        out.storeBigEndian(UInt16(out.count - STUNMessage.headerLength), at: 2)
        return out
    }

    static func append(_ type: STUNAttributeType, _ value: [UInt8], to out: inout [UInt8]) {
        out.appendBigEndian(type.rawValue)
        out.appendBigEndian(UInt16(value.count))
        out.append(contentsOf: value)
        let pad = (4 - value.count % 4) % 4
        out.append(contentsOf: repeatElement(0, count: pad))
    }
}

/// The hashes STUN needs, from OpenSSL and by hand (CRC-32). `hmac` is public for TURN's
/// nonces and REST passwords.
public enum STUNCrypto {
    public static func hmac(sha256: Bool, key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                HMAC(sha256 ? EVP_sha256() : EVP_sha1(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, &out, &length)
            }
        }
        return Array(out.prefix(Int(length)))
    }

    static func md5(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        _ = data.withUnsafeBufferPointer { d in EVP_Digest(d.baseAddress, d.count, &out, &length, EVP_md5(), nil) }
        return out
    }

    static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = data.withUnsafeBufferPointer { d in EVP_Digest(d.baseAddress, d.count, &out, &length, EVP_sha256(), nil) }
        return out
    }

    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = crcTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

extension STUNIntegrity {
    /// The long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password), or
    /// SHA-256 of the same when the client chose that password algorithm.
    public static func longTerm(username: String, realm: String, password: String, sha256: Bool = false) -> [UInt8] {
        let text = Array("\(username):\(realm):\(password)".utf8)
        return sha256 ? STUNCrypto.sha256(text) : STUNCrypto.md5(text)
    }
}
