/// Every fuzz harness by the name its libFuzzer executable (`fuzz-<name>`), corpus folder and
/// dictionary carry, so the corpus replay test runs exactly what `make fuzz` runs.
public enum FuzzHarness {
    public static let all: [(name: String, run: @Sendable (UnsafeRawBufferPointer) -> Void)] = [
        ("json", fuzzJSON),
        ("sdp", fuzzSDP),
        ("stun", fuzzSTUN),
        ("turn", fuzzTURN),
        ("rtp", fuzzRTP),
        ("rtcp", fuzzRTCP),
        ("vp8", fuzzVP8),
        ("vp9", fuzzVP9),
        ("h264", fuzzH264),
        ("av1", fuzzAV1),
        ("opus", fuzzOpus),
        ("matroska-repair", fuzzMatroskaRepair),
        ("http", fuzzHTTP),
        ("janus-api", fuzzJanusAPI),
        ("tls", fuzzTLS),
    ]
}
