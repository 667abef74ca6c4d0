import Foundation

/// The PRECIS OpaqueString profile (RFC 8265 §4.2), which RFC 8489 applies to the realm and the
/// password before hashing them into a SHA-256 long-term key, and to the user name and realm of a
/// USERHASH.
///
/// The profile is the FreeformClass of RFC 8264 with two rules on top: every non-ASCII space
/// becomes U+0020, and the result is in Unicode Normalization Form C. A string that keeps a code
/// point the class disallows has no OpaqueString form at all, so no key can be made from it.
///
/// Rationale: RFC 8489 Appendix B says "The\u{AD}M\u{AA}tr\u{2168}" becomes "TheMatrIX" under
/// OpaqueString; that is what SASLprep (NFKC, soft hyphen mapped to nothing) did for RFC 5389.
/// Under OpaqueString the soft hyphen, a default-ignorable code point, is disallowed, and NFC
/// leaves U+00AA and U+2168 alone. The corrected test vector (erratum 6268) keys with "TheMatrIX".
public enum OpaqueString {
    /// The prepared form of `text`, or nil when it is empty or holds a disallowed code point.
    public static func prepare(_ text: String) -> String? {
        // ASCII printable text is its own OpaqueString form: the common case (REST passwords are
        // base64) costs one scan.
        if !text.isEmpty, text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) { return text }
        var mapped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let properties = scalar.properties
            if properties.generalCategory == .spaceSeparator {
                mapped.append(" ")
                continue
            }
            guard isFreeform(scalar, properties) else { return nil }
            mapped.append(scalar)
        }
        let normalized = String(mapped).precomposedStringWithCanonicalMapping
        return normalized.isEmpty ? nil : normalized
    }

    /// RFC 8264 §8 (FreeformClass), by general category: letters, marks, digits and other
    /// numbers, symbols, punctuation and spaces are valid; controls, format characters (among them
    /// every default-ignorable code point), separators other than spaces, private use, unassigned
    /// and noncharacters are not. Old Hangul jamo (§9.9) are refused as the class asks.
    private static func isFreeform(_ scalar: Unicode.Scalar, _ p: Unicode.Scalar.Properties) -> Bool {
        if p.isDefaultIgnorableCodePoint || p.isNoncharacterCodePoint { return false }
        // Hangul_Syllable_Type L, V or T: the conjoining jamo blocks.
        if (0x1100...0x11FF).contains(scalar.value) || (0xA960...0xA97F).contains(scalar.value) || (0xD7B0...0xD7FF).contains(scalar.value) {
            return false
        }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark,
             .decimalNumber, .letterNumber, .otherNumber,
             .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
             .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }
}
