/// A STUN message (RFC 8489): the header, the attributes in order, and where the integrity and
/// fingerprint attributes sit so they can be checked against the raw bytes.
public struct STUNMessage: Sendable, Equatable {
    public static let magicCookie: UInt32 = 0x2112_A442
    public static let headerLength = 20

    public var method: STUNMethod
    public var messageClass: STUNClass
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    public init(method: STUNMethod, messageClass: STUNClass, transactionID: STUNTransactionID = .random(), attributes: [STUNAttribute] = []) {
        self.method = method
        self.messageClass = messageClass
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// The first attribute of a type, if present.
    public func attribute(_ type: STUNAttributeType) -> STUNAttribute? {
        attributes.first { $0.type == type }
    }

    /// Whether a datagram can be STUN (RFC 7983 demultiplexing: first byte 0–3, cookie in place).
    public static func looksLikeSTUN(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= headerLength, bytes[0] < 4 else { return false }
        return bytes.bigEndianUInt32(at: 4) == magicCookie
    }
}

/// The STUN methods Atrium speaks (ICE and TURN).
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)
    public static let connect = STUNMethod(rawValue: 0x00A)
    public static let connectionBind = STUNMethod(rawValue: 0x00B)
    public static let connectionAttempt = STUNMethod(rawValue: 0x00C)

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Request, indication, success or error response.
public enum STUNClass: UInt8, Sendable {
    case request = 0
    case indication = 1
    case success = 2
    case error = 3
}

/// The 96-bit transaction id.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt32, UInt32, UInt32)

    public init(_ a: UInt32, _ b: UInt32, _ c: UInt32) { bytes = (a, b, c) }

    public static func random() -> STUNTransactionID {
        var g = SystemRandomNumberGenerator()
        return STUNTransactionID(g.next(), g.next(), g.next())
    }

    public static func == (l: Self, r: Self) -> Bool { l.bytes == r.bytes }
    public func hash(into h: inout Hasher) {
        h.combine(bytes.0)
        h.combine(bytes.1)
        h.combine(bytes.2)
    }
    public var description: String {
        [bytes.0, bytes.1, bytes.2].map { String($0, radix: 16) }.joined(separator: ":")
    }
}

/// Attribute types (RFC 8489, 8445, 8656, 6062).
public struct STUNAttributeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let mappedAddress = Self(rawValue: 0x0001)
    public static let username = Self(rawValue: 0x0006)
    public static let messageIntegrity = Self(rawValue: 0x0008)
    public static let errorCode = Self(rawValue: 0x0009)
    public static let unknownAttributes = Self(rawValue: 0x000A)
    public static let channelNumber = Self(rawValue: 0x000C)
    public static let lifetime = Self(rawValue: 0x000D)
    public static let xorPeerAddress = Self(rawValue: 0x0012)
    public static let data = Self(rawValue: 0x0013)
    public static let realm = Self(rawValue: 0x0014)
    public static let nonce = Self(rawValue: 0x0015)
    public static let xorRelayedAddress = Self(rawValue: 0x0016)
    public static let requestedAddressFamily = Self(rawValue: 0x0017)
    public static let evenPort = Self(rawValue: 0x0018)
    public static let requestedTransport = Self(rawValue: 0x0019)
    public static let dontFragment = Self(rawValue: 0x001A)
    public static let messageIntegritySHA256 = Self(rawValue: 0x001C)
    public static let passwordAlgorithm = Self(rawValue: 0x001D)
    public static let userhash = Self(rawValue: 0x001E)
    public static let xorMappedAddress = Self(rawValue: 0x0020)
    public static let reservationToken = Self(rawValue: 0x0022)
    public static let priority = Self(rawValue: 0x0024)
    public static let useCandidate = Self(rawValue: 0x0025)
    public static let connectionID = Self(rawValue: 0x002A)
    public static let additionalAddressFamily = Self(rawValue: 0x8000)
    public static let addressErrorCode = Self(rawValue: 0x8001)
    public static let passwordAlgorithms = Self(rawValue: 0x8002)
    public static let alternateDomain = Self(rawValue: 0x8003)
    public static let icmp = Self(rawValue: 0x8004)
    public static let software = Self(rawValue: 0x8022)
    public static let alternateServer = Self(rawValue: 0x8023)
    public static let fingerprint = Self(rawValue: 0x8028)
    public static let iceControlled = Self(rawValue: 0x8029)
    public static let iceControlling = Self(rawValue: 0x802A)

    /// Comprehension-required attributes are 0x0000–0x7FFF.
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// One attribute: its type and raw value (without padding).
public struct STUNAttribute: Sendable, Equatable {
    public var type: STUNAttributeType
    public var value: [UInt8]

    public init(type: STUNAttributeType, value: [UInt8]) {
        self.type = type
        self.value = value
    }
}

/// Why bytes are not an acceptable STUN message.
public struct STUNError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "STUN: \(reason)" }
}

/// Big-endian reads from bytes indexed from 0 (arrays, raw buffers); the caller checks the bounds.
extension RandomAccessCollection where Element == UInt8, Index == Int {
    func bigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ v: UInt16) {
        append(UInt8(v >> 8))
        append(UInt8(v & 0xFF))
    }

    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(v >> 24))
        append(UInt8((v >> 16) & 0xFF))
        append(UInt8((v >> 8) & 0xFF))
        append(UInt8(v & 0xFF))
    }

    mutating func appendBigEndian(_ v: UInt64) {
        appendBigEndian(UInt32(v >> 32))
        appendBigEndian(UInt32(v & 0xFFFF_FFFF))
    }

    mutating func storeBigEndian(_ v: UInt16, at offset: Int) {
        self[offset] = UInt8(v >> 8)
        self[offset + 1] = UInt8(v & 0xFF)
    }
}
