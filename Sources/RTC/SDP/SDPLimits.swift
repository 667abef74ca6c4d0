/// How much one session description may hold. A browser's offer for a large meeting has a few
/// dozen media sections with a handful of candidates, SSRCs and rids each; a hostile one can
/// have thousands, and every section costs the media thread work on every report and packet.
/// The parser stops at the first line past a limit, so an oversized offer costs almost nothing.
public struct SDPLimits: Sendable, Equatable {
    /// `m=` sections in the whole description.
    public var mediaSections: Int
    /// `a=` lines in one section (or at session level).
    public var attributesPerSection: Int
    /// `a=candidate` lines in one section.
    public var candidatesPerSection: Int
    /// Distinct SSRCs named by `a=ssrc` lines in one section.
    public var ssrcsPerSection: Int
    /// `a=rid` lines in one section.
    public var ridsPerSection: Int
    /// Lines in the whole description.
    public var lines: Int

    public init(mediaSections: Int = 64, attributesPerSection: Int = 512, candidatesPerSection: Int = 64,
                ssrcsPerSection: Int = 32, ridsPerSection: Int = 8, lines: Int = 20_000) {
        self.mediaSections = mediaSections
        self.attributesPerSection = attributesPerSection
        self.candidatesPerSection = candidatesPerSection
        self.ssrcsPerSection = ssrcsPerSection
        self.ridsPerSection = ridsPerSection
        self.lines = lines
    }

    public static let `default` = SDPLimits()
}
