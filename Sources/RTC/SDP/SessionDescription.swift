/// A session description (RFC 8866) as WebRTC peers exchange it in offers and answers (JSEP, RFC 8829).
///
/// Parse one with `SessionDescription.parse(_:)` and write it back with `serialized`; what is read is
/// written back line for line, attribute order included.
public struct SessionDescription: Sendable, Hashable {
    /// `v=`, always 0.
    public var version: Int
    /// `o=`.
    public var origin: Origin
    /// `s=`, `-` in JSEP.
    public var sessionName: String
    /// `i=`.
    public var sessionInformation: String?
    /// `u=`.
    public var uri: String?
    /// `e=` lines.
    public var emails: [String]
    /// `p=` lines.
    public var phones: [String]
    /// The session-level `c=` line.
    public var connection: ConnectionData?
    /// Session-level `b=` lines.
    public var bandwidths: [Bandwidth]
    /// `t=` lines with their `r=` lines; JSEP writes one `t=0 0`.
    public var timings: [Timing]
    /// `z=`, kept as written.
    public var timeZones: String?
    /// `k=` (obsolete), kept as written.
    public var encryptionKey: String?
    /// The session-level `a=` lines in order.
    public var attributes: [SDPAttribute]
    /// The media sections in order; their index is the JSEP m-line index.
    public var media: [MediaDescription]

    public init(
        version: Int = 0, origin: Origin, sessionName: String = "-", sessionInformation: String? = nil, uri: String? = nil,
        emails: [String] = [], phones: [String] = [], connection: ConnectionData? = nil, bandwidths: [Bandwidth] = [],
        timings: [Timing] = [Timing()], timeZones: String? = nil, encryptionKey: String? = nil,
        attributes: [SDPAttribute] = [], media: [MediaDescription] = []
    ) {
        self.version = version
        self.origin = origin
        self.sessionName = sessionName
        self.sessionInformation = sessionInformation
        self.uri = uri
        self.emails = emails
        self.phones = phones
        self.connection = connection
        self.bandwidths = bandwidths
        self.timings = timings
        self.timeZones = timeZones
        self.encryptionKey = encryptionKey
        self.attributes = attributes
        self.media = media
    }

    /// The session-level attributes that have no typed property, in order.
    public var otherAttributes: [SDPAttribute] {
        attributes.filter { if case .other = $0 { true } else { false } }
    }

    /// `a=group` lines.
    public var groups: [MediaGroup] {
        get { attributes.all { if case .group(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .group = $0 { true } else { false } }, with: newValue.map { .group($0) }) }
    }

    /// The first BUNDLE group, or nil when nothing is bundled.
    public var bundleGroup: MediaGroup? { groups.first { $0.isBundle } }

    /// `a=msid-semantic`.
    public var msidSemantic: MSIDSemantic? {
        get { attributes.first { if case .msidSemantic(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .msidSemantic = $0 { true } else { false } }, with: newValue.map { [.msidSemantic($0)] } ?? []) }
    }

    /// `a=ice-lite`.
    public var iceLite: Bool {
        get { attributes.contains(.iceLite) }
        set { attributes.setFlag(.iceLite, newValue) }
    }

    /// `a=extmap-allow-mixed`.
    public var extmapAllowMixed: Bool {
        get { attributes.contains(.extmapAllowMixed) }
        set { attributes.setFlag(.extmapAllowMixed, newValue) }
    }

}

/// An ICE username fragment and password (RFC 8445 §5.3).

extension SessionDescription {
    /// The media section whose `a=mid` is `mid`, or nil.
    public func media(mid: String) -> MediaDescription? {
        mediaIndex(mid: mid).map { media[$0] }
    }

    /// The m-line index of the media section whose `a=mid` is `mid`, or nil.
    public func mediaIndex(mid: String) -> Int? {
        media.firstIndex { $0.mid == mid }
    }

    /// The ICE credentials that apply to `media`: its own, else the session-level ones; nil when
    /// either the ufrag or the password is missing at both levels.
    public func iceCredentials(of media: MediaDescription) -> IceCredentials? {
        guard let ufrag = media.iceUfrag ?? iceUfrag, let pwd = media.icePwd ?? icePwd else { return nil }
        return IceCredentials(ufrag: ufrag, password: pwd)
    }

    /// The DTLS fingerprints that apply to `media`: its own, else the session-level ones.
    public func fingerprints(of media: MediaDescription) -> [Fingerprint] {
        media.fingerprints.isEmpty ? fingerprints : media.fingerprints
    }

    /// The DTLS role that applies to `media`: its own `a=setup`, else the session-level one.
    public func setup(of media: MediaDescription) -> SetupRole? {
        media.setup ?? setup
    }

    /// The ICE options that apply to `media`: its own, else the session-level ones.
    public func iceOptions(of media: MediaDescription) -> [String] {
        media.iceOptions.isEmpty ? iceOptions : media.iceOptions
    }

    /// The start of an answer to this offer (RFC 8829 §5.3.1): one skeleton section per offered
    /// section (see `MediaDescription.answerSkeleton`) and the offer's BUNDLE group without rejected
    /// sections. The plugin fills in codecs; the host adds ICE, DTLS and candidates.
    public func answerSkeleton(origin: Origin) -> SessionDescription {
        var answer = SessionDescription(origin: origin)
        answer.media = media.map { $0.answerSkeleton() }
        if let bundle = bundleGroup {
            let accepted = Set(media.filter { !$0.isRejected }.compactMap(\.mid))
            answer.groups = [MediaGroup(semantics: bundle.semantics, mids: bundle.mids.filter(accepted.contains))]
        }
        return answer
    }
}
