import CSRTP

/// The SRTP protection profiles Atrium negotiates (RFC 7714 AEAD first, RFC 5764 as fallback).
public enum SRTPProfile: Sendable, CaseIterable {
    case aeadAES128GCM
    case aes128CMHMACSHA1_80

    /// Master key and master salt lengths in bytes.
    public var keyLength: Int { 16 }
    public var saltLength: Int {
        switch self {
        case .aeadAES128GCM: return 12
        case .aes128CMHMACSHA1_80: return 14
        }
    }

    /// The name used in DTLS-SRTP negotiation (`use_srtp`).
    public var dtlsName: String {
        switch self {
        case .aeadAES128GCM: return "SRTP_AEAD_AES_128_GCM"
        case .aes128CMHMACSHA1_80: return "SRTP_AES128_CM_SHA1_80"
        }
    }

    public init?(dtlsName: String) {
        guard let p = Self.allCases.first(where: { $0.dtlsName == dtlsName }) else { return nil }
        self = p
    }

    var libsrtp: srtp_profile_t {
        switch self {
        case .aeadAES128GCM: return srtp_profile_aead_aes_128_gcm
        case .aes128CMHMACSHA1_80: return srtp_profile_aes128_cm_sha1_80
        }
    }
}

/// Why libsrtp, or the OpenSSL GCM path in its stead, refused a packet or a key.
public struct SRTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int32
    public var operation: String

    public var description: String {
        let name: String
        switch status {
        case Int32(srtp_err_status_auth_fail.rawValue): name = "authentication failed"
        case Int32(srtp_err_status_replay_fail.rawValue): name = "replayed packet"
        case Int32(srtp_err_status_replay_old.rawValue): name = "packet too old"
        case Int32(srtp_err_status_bad_param.rawValue): name = "bad parameter"
        case Int32(srtp_err_status_no_ctx.rawValue): name = "unknown SSRC"
        default: name = "status \(status)"
        }
        return "SRTP \(operation): \(name)"
    }
}

extension SRTPError {
    /// A libsrtp status; the OpenSSL GCM path refuses with the same ones.
    init(_ status: srtp_err_status_t, _ operation: String) {
        self.init(status: Int32(status.rawValue), operation: operation)
    }
}

/// libsrtp is initialised once per process.
private let libsrtpReady: Bool = srtp_init() == srtp_err_status_ok

/// One direction of SRTP and SRTCP protection for one DTLS association: `outbound` protects what
/// we send, `inbound` unprotects what we receive (any SSRC). Not thread-safe: one media loop uses it.
///
/// The corresponding C functions are `srtp_create`, `srtp_protect`, `srtp_unprotect`,
/// `srtp_protect_rtcp` and `srtp_unprotect_rtcp`.
public final class SRTPContext: @unchecked Sendable {
    public enum Direction: Sendable { case inbound, outbound }

    /// The most bytes protection adds to a packet (tag, SRTCP index, MKI).
    public static let maximumTrailer = Int(SRTP_MAX_TRAILER_LEN)

    public let profile: SRTPProfile
    public let direction: Direction
    private var session: srtp_t?
    /// AEAD_AES_128_GCM RTP goes through OpenSSL directly, sealed outbound and opened inbound
    /// (see RTPGCMCipher); SRTCP stays in libsrtp.
    private let sealer: RTPGCMSealer?
    private let opener: RTPGCMOpener?

    /// Creates a context from the master key and salt (as exported by DTLS-SRTP).
    public convenience init(profile: SRTPProfile, masterKey: [UInt8], masterSalt: [UInt8], direction: Direction) throws(SRTPError) {
        try self.init(profile: profile, masterKey: masterKey, masterSalt: masterSalt, direction: direction, openSSLGCM: true)
    }

    /// `openSSLGCM: false` keeps GCM RTP in libsrtp too, either way (tests compare the two).
    init(profile: SRTPProfile, masterKey: [UInt8], masterSalt: [UInt8], direction: Direction, openSSLGCM: Bool) throws(SRTPError) {
        guard libsrtpReady else { throw SRTPError(status: -1, operation: "init") }
        guard masterKey.count == profile.keyLength, masterSalt.count == profile.saltLength else {
            throw SRTPError(srtp_err_status_bad_param, "key length")
        }
        self.profile = profile
        self.direction = direction
        var policy = srtp_policy_t()
        srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, profile.libsrtp)
        srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, profile.libsrtp)
        policy.ssrc.type = direction == .inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.window_size = UInt(RTPGCMOpener.windowSize)
        // Retransmissions (answers to NACKs) protect the same sequence number again.
        policy.allow_repeat_tx = 1
        var key = masterKey + masterSalt
        var created: srtp_t?
        let status = key.withUnsafeMutableBufferPointer { k -> srtp_err_status_t in
            policy.key = k.baseAddress
            return srtp_create(&created, &policy)
        }
        guard status == srtp_err_status_ok else { throw SRTPError(status: Int32(status.rawValue), operation: "create") }
        session = created
        let gcm = openSSLGCM && profile == .aeadAES128GCM
        sealer = gcm && direction == .outbound ? RTPGCMSealer(masterKey: masterKey, masterSalt: masterSalt) : nil
        opener = gcm && direction == .inbound ? RTPGCMOpener(masterKey: masterKey, masterSalt: masterSalt) : nil
    }

    deinit {
        if let session { srtp_dealloc(session) }
    }

    /// Protects an RTP packet in place. `buffer` holds `length` bytes of plain RTP and has room for
    /// `maximumTrailer` more. Returns the protected length. Allocates nothing.
    public func protect(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let sealer {
            guard let n = sealer.seal(buffer, length: length) else {
                throw SRTPError(srtp_err_status_bad_param, "protect")
            }
            return n
        }
        return try run(buffer, length, op: "protect", srtp_protect)
    }

    /// Unprotects an SRTP packet in place; returns the plain length.
    public func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let opener { return try opener.open(buffer, length: length) }
        return try run(buffer, length, op: "unprotect", srtp_unprotect)
    }

    @inlinable
    public func protectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(buffer, length, op: "protect RTCP", srtp_protect_rtcp)
    }

    @inlinable
    public func unprotectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(buffer, length, op: "unprotect RTCP", srtp_unprotect_rtcp)
    }

    @usableFromInline
    func run(
        _ buffer: UnsafeMutableRawBufferPointer, _ length: Int, op: StaticString,
        _ call: (srtp_t?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> srtp_err_status_t
    ) throws(SRTPError) -> Int {
        guard length >= 0, length <= buffer.count else {
            throw SRTPError(srtp_err_status_bad_param, "\(op)")
        }
        if direction == .outbound && buffer.count - length < Self.maximumTrailer {
            throw SRTPError(srtp_err_status_bad_param, "\(op) (no room for the trailer)")
        }
        var len = Int32(length)
        let status = call(session, buffer.baseAddress, &len)
        guard status == srtp_err_status_ok else { throw SRTPError(status: Int32(status.rawValue), operation: "\(op)") }
        return Int(len)
    }

    /// Convenience for tests and control paths: protects a copy.
    public func protect(_ packet: [UInt8], rtcp: Bool = false) throws(SRTPError) -> [UInt8] {
        var buffer = packet + [UInt8](repeating: 0, count: Self.maximumTrailer)
        let n = try buffer.withUnsafeMutableBytes { b in
            Result { () throws(SRTPError) in rtcp ? try protectRTCP(b, length: packet.count) : try protect(b, length: packet.count) }
        }.get()
        return Array(buffer.prefix(n))
    }

    /// Convenience for tests and control paths: unprotects a copy.
    public func unprotect(_ packet: [UInt8], rtcp: Bool = false) throws(SRTPError) -> [UInt8] {
        var buffer = packet
        let n = try buffer.withUnsafeMutableBytes { b in
            Result { () throws(SRTPError) in rtcp ? try unprotectRTCP(b, length: packet.count) : try unprotect(b, length: packet.count) }
        }.get()
        return Array(buffer.prefix(n))
    }
}
