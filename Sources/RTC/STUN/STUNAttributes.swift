/// Typed readers and writers for the attributes ICE and TURN use.
extension STUNAttribute {
    /// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS (RFC 8489 §14.2).
    public static func xorAddress(_ type: STUNAttributeType, _ address: TransportAddress, transactionID: STUNTransactionID) -> STUNAttribute {
        let mask = xorMask(transactionID: transactionID)
        var value: [UInt8] = [0, address.ip.isIPv4 ? 0x01 : 0x02]
        value.appendBigEndian(address.port ^ UInt16(STUNMessage.magicCookie >> 16))
        for (i, b) in address.ip.bytes.enumerated() { value.append(b ^ mask[i]) }
        return STUNAttribute(type: type, value: value)
    }

    /// MAPPED-ADDRESS (RFC 8489 §14.1): the address in the clear.
    public static func mappedAddress(_ address: TransportAddress) -> STUNAttribute {
        var value: [UInt8] = [0, address.ip.isIPv4 ? 0x01 : 0x02]
        value.appendBigEndian(address.port)
        value.append(contentsOf: address.ip.bytes)
        return STUNAttribute(type: .mappedAddress, value: value)
    }

    /// Reads an XOR-…-ADDRESS value; nil if malformed.
    public func xorAddress(transactionID: STUNTransactionID) -> TransportAddress? {
        guard value.count == 8 || value.count == 20 else { return nil }
        let family = value[1]
        guard (family == 0x01 && value.count == 8) || (family == 0x02 && value.count == 20) else { return nil }
        let port = value.bigEndianUInt16(at: 2) ^ UInt16(STUNMessage.magicCookie >> 16)
        let mask = Self.xorMask(transactionID: transactionID)
        let raw = value[4...].enumerated().map { $0.element ^ mask[$0.offset] }
        guard let ip = IPAddress(bytes: raw) else { return nil }
        return TransportAddress(ip: ip, port: port)
    }

    /// Reads a MAPPED-ADDRESS value; nil if malformed.
    public var mappedAddress: TransportAddress? {
        guard (value.count == 8 && value[1] == 0x01) || (value.count == 20 && value[1] == 0x02) else { return nil }
        guard let ip = IPAddress(bytes: Array(value[4...])) else { return nil }
        return TransportAddress(ip: ip, port: value.bigEndianUInt16(at: 2))
    }

    static func xorMask(transactionID: STUNTransactionID) -> [UInt8] {
        var mask: [UInt8] = []
        mask.appendBigEndian(STUNMessage.magicCookie)
        mask.appendBigEndian(transactionID.bytes.0)
        mask.appendBigEndian(transactionID.bytes.1)
        mask.appendBigEndian(transactionID.bytes.2)
        return mask
    }

    public static func string(_ type: STUNAttributeType, _ text: String) -> STUNAttribute {
        STUNAttribute(type: type, value: Array(text.utf8))
    }

    /// The value as UTF-8 text (USERNAME, REALM, NONCE, SOFTWARE), if valid.
    public var stringValue: String? { String(validating: value, as: UTF8.self) }

    public static func uint32(_ type: STUNAttributeType, _ v: UInt32) -> STUNAttribute {
        var value: [UInt8] = []
        value.appendBigEndian(v)
        return STUNAttribute(type: type, value: value)
    }

    public var uint32Value: UInt32? {
        guard value.count == 4 else { return nil }
        return value.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public static func uint64(_ type: STUNAttributeType, _ v: UInt64) -> STUNAttribute {
        var value: [UInt8] = []
        value.appendBigEndian(v)
        return STUNAttribute(type: type, value: value)
    }

    public var uint64Value: UInt64? {
        guard value.count == 8 else { return nil }
        return value.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// ERROR-CODE (RFC 8489 §14.8): a 300–699 code and a reason phrase.
    public static func errorCode(_ code: Int, _ reason: String) -> STUNAttribute {
        var value: [UInt8] = [0, 0, UInt8(code / 100), UInt8(code % 100)]
        value.append(contentsOf: Array(reason.utf8.prefix(763)))
        return STUNAttribute(type: .errorCode, value: value)
    }

    public var errorCodeValue: (code: Int, reason: String)? {
        guard type == .errorCode, value.count >= 4 else { return nil }
        let code = Int(value[2] & 0x07) * 100 + Int(value[3])
        return (code, String(decoding: value[4...], as: UTF8.self))
    }
}
