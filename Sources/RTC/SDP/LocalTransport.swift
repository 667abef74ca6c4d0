/// The transport half of a description this side writes: what the host adds to the media part a
/// plugin produced before it goes to the client (ICE credentials, DTLS fingerprint and role, its
/// candidates; half-trickle, so `a=end-of-candidates` follows them).
public struct LocalTransport: Sendable, Hashable {
    public var ice: IceCredentials
    public var fingerprint: Fingerprint
    public var setup: SetupRole
    public var candidates: [Candidate]

    public init(ice: IceCredentials, fingerprint: Fingerprint, setup: SetupRole, candidates: [Candidate]) {
        self.ice = ice
        self.fingerprint = fingerprint
        self.setup = setup
        self.candidates = candidates
    }

    /// Host candidates for each address, UDP first, then passive ICE-TCP (RFC 6544) when a TCP port is
    /// given. Priorities follow RFC 8445 §5.1.2.1 with the type preference of a host candidate (126),
    /// lowered for TCP so that peers prefer UDP. Foundations differ by address and by transport
    /// (RFC 8445 §5.1.1.3), so a peer freezes and unfreezes UDP and TCP pairs independently.
    public static func hostCandidates(addresses: [IPAddress], udpPort: UInt16, tcpPort: UInt16?) -> [Candidate] {
        var out: [Candidate] = []
        for (i, address) in addresses.enumerated() {
            let localPreference = UInt32(65_535 - min(i, 65_535))
            out.append(Candidate(foundation: "\(2 * i + 1)", transport: .udp, priority: (126 << 24) | (localPreference << 8) | 255,
                                 address: address.description, port: udpPort))
            if let tcpPort {
                out.append(Candidate(foundation: "\(2 * i + 2)", transport: .tcp, priority: (80 << 24) | (localPreference << 8) | 255,
                                     address: address.description, port: tcpPort, tcpType: .passive))
            }
        }
        return out
    }
}

extension SessionDescription {
    /// Writes `transport` into every section this side accepts, so a plugin's media-only description
    /// becomes one a browser takes: ICE-lite at session level, per section the credentials,
    /// fingerprint, role, rtcp-mux and the candidates; sections that are not RTP (data channels,
    /// until SCTP exists) are rejected with port 0; the BUNDLE group lists the accepted sections.
    /// Returns the mids of the sections it rejected for being unsupported.
    @discardableResult
    public mutating func complete(with transport: LocalTransport) -> [String] {
        var rejected: [String] = []
        let first = transport.candidates.first { $0.transport == .udp } ?? transport.candidates.first
        let address = first.flatMap { IPAddress($0.address) }
        iceLite = true
        removeTransport()
        if msidSemantic == nil { msidSemantic = MSIDSemantic() }
        connection = ConnectionData(addressType: address.map { $0.isIPv4 ? "IP4" : "IP6" } ?? "IP4",
                                    address: first?.address ?? "0.0.0.0")
        for i in media.indices {
            var m = media[i]
            if !m.isRTP && !m.isRejected {
                m.port = 0
                rejected.append(m.mid ?? "\(i)")
            }
            m.connections = []
            if m.isRejected {
                m.removeTransport()
                m.candidates = []
                m.endOfCandidates = false
                m.attributes.removeAll { if case .sctpPort = $0 { true } else if case .maxMessageSize = $0 { true } else { false } }
            } else {
                m.port = first?.port ?? 9
                m.iceUfrag = transport.ice.ufrag
                m.icePwd = transport.ice.password
                m.iceOptions = []
                m.fingerprints = [transport.fingerprint]
                m.setup = transport.setup
                m.rtcpMux = true
                m.candidates = transport.candidates
                m.endOfCandidates = true
            }
            media[i] = m
        }
        let accepted = media.filter { !$0.isRejected }.compactMap(\.mid)
        var others = groups.filter { !$0.isBundle }
        if !accepted.isEmpty { others.insert(MediaGroup(semantics: "BUNDLE", mids: accepted), at: 0) }
        groups = others
        return rejected
    }
}
