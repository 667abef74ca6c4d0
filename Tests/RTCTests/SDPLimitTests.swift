import Testing
import RTC

/// Offers a hostile client can send: values RTP does not use, and sizes no browser sends.
@Suite struct SDPLimitTests {
    static func offer(sections: Int, extra: String = "") -> String {
        var text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        for i in 0..<sections {
            text += "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:\(i)\r\na=rtpmap:111 opus/48000/2\r\n" + extra
        }
        return text
    }

    @Test func refusesClockRatesRTPDoesNotUse() {
        for rate in ["4294967295", "0", "999", "192001"] {
            let text = Self.offer(sections: 1).replacingOccurrences(of: "opus/48000/2", with: "opus/\(rate)/2")
            #expect(throws: SDPParseError.self) { try SessionDescription.parse(text) }
        }
        for rate in ["8000", "16000", "44100", "48000", "90000", "192000"] {
            let text = Self.offer(sections: 1).replacingOccurrences(of: "opus/48000/2", with: "opus/\(rate)/2")
            #expect(throws: Never.self) { try SessionDescription.parse(text) }
        }
    }

    @Test func clockRateErrorSaysWhy() throws {
        let text = Self.offer(sections: 1).replacingOccurrences(of: "opus/48000/2", with: "opus/4294967295/2")
        do {
            _ = try SessionDescription.parse(text)
            Issue.record("parsed")
        } catch {
            #expect(error.line == 8)
            #expect(error.reason.contains("4294967295"))
            #expect(error.reason.contains("8000") || error.reason.contains("1000"))
        }
    }

    @Test func boundsMediaSections() throws {
        _ = try SessionDescription.parse(Self.offer(sections: 64))
        do {
            _ = try SessionDescription.parse(Self.offer(sections: 4_000))
            Issue.record("4,000 m-lines parsed")
        } catch {
            #expect(error.code == .tooLarge)
            #expect(error.reason.contains("64 media sections"))
        }
        let limits = SDPLimits(mediaSections: 2)
        #expect(throws: SDPParseError.self) { try SessionDescription.parse(Self.offer(sections: 3), limits: limits) }
    }

    @Test func boundsCandidatesSSRCsAndRidsPerSection() throws {
        let candidate = { (i: Int) in "a=candidate:\(i) 1 udp 2122260223 10.0.0.1 \(5000 + i) typ host\r\n" }
        let ssrc = { (i: Int) in "a=ssrc:\(1000 + i) cname:x\r\na=ssrc:\(1000 + i) msid:a b\r\n" }
        let rid = { (i: Int) in "a=rid:r\(i) send\r\n" }
        for (make, limit) in [(candidate, 64), (ssrc, 32), (rid, 8)] as [((Int) -> String, Int)] {
            _ = try SessionDescription.parse(Self.offer(sections: 2, extra: (0..<limit).map(make).joined()))
            #expect(throws: SDPParseError.self) {
                try SessionDescription.parse(Self.offer(sections: 1, extra: (0...limit).map(make).joined()))
            }
        }
    }

    @Test func countsLinesBeforeSplittingThem() {
        // A megabyte of line breaks is refused without making a million lines first.
        do {
            _ = try SessionDescription.parse(String(repeating: "\n", count: 1 << 20))
            Issue.record("parsed")
        } catch {
            #expect(error.code == .tooLarge && error.line == 20_000)
        }
    }

    @Test func boundsLinesAndAttributes() {
        let many = String(repeating: "a=x-anything\r\n", count: 600)
        #expect(throws: SDPParseError.self) { try SessionDescription.parse(Self.offer(sections: 1, extra: many)) }
        #expect(throws: SDPParseError.self) {
            try SessionDescription.parse(Self.offer(sections: 1, extra: String(repeating: "b=AS:1\r\n", count: 20_001)))
        }
    }
}
