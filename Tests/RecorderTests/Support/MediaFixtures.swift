import Foundation
import RecorderCore
import Testing

/// Real encoders as the source of test streams: the recorder must rebuild exactly what they wrote.
enum FFmpeg {
    /// The path of `tool` on PATH; a missing tool fails the test, it never skips it.
    static func locate(_ tool: String, installHint: String = "install ffmpeg: make deps-test") throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw FixtureError("\(tool) not found: \(installHint)")
    }

    /// Runs `tool` with `arguments` (its output goes to files it is given); an error carries what it
    /// wrote on standard error.
    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try locate(tool))
        process.arguments = arguments
        let errors = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("\(tool) \(arguments.joined(separator: " ")) failed: \(String(decoding: err, as: UTF8.self))")
        }
    }

    /// Encodes `frames` frames of ffmpeg's test pattern at `size` with `codecArguments` into a
    /// file of `format`, and returns its bytes.
    static func encode(size: String, frames: Int = 30, _ codecArguments: [String], format: String) throws -> [UInt8] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("recorder-fixture-\(UUID().uuidString).\(format)")
        defer { try? FileManager.default.removeItem(at: file) }
        try run(
            "ffmpeg",
            ["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=\(size):rate=30", "-frames:v", "\(frames)"]
                + codecArguments + ["-f", format, file.path])
        return [UInt8](try Data(contentsOf: file))
    }

    /// Remuxes `bytes` (a file of `inputFormat`) into MP4 without re-encoding, to read the codec
    /// configuration box ffmpeg writes (`avcC`, `av1C`), as an independent reference.
    static func mp4ConfigurationBox(_ bytes: [UInt8], inputFormat: String, box: String) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory
        let input = dir.appendingPathComponent("recorder-fixture-\(UUID().uuidString).\(inputFormat)")
        let output = dir.appendingPathComponent("recorder-fixture-\(UUID().uuidString).mp4")
        defer {
            try? FileManager.default.removeItem(at: input)
            try? FileManager.default.removeItem(at: output)
        }
        try Data(bytes).write(to: input)
        try run("ffmpeg", ["-v", "error", "-nostdin", "-y", "-f", inputFormat, "-i", input.path, "-c", "copy", "-f", "mp4", output.path])
        let mp4 = [UInt8](try Data(contentsOf: output))
        let name = Array(box.utf8)
        for i in 4..<(mp4.count - 4) where Array(mp4[i..<(i + 4)]) == name {
            let size = Int(mp4[i - 4]) << 24 | Int(mp4[i - 3]) << 16 | Int(mp4[i - 2]) << 8 | Int(mp4[i - 1])
            guard size >= 8, i - 4 + size <= mp4.count else { break }
            return Array(mp4[(i + 4)..<(i - 4 + size)])
        }
        throw FixtureError("no \(box) box in ffmpeg's MP4")
    }
}

/// The frames of an IVF file (VP8, VP9, AV1 elementary streams): a 32-byte file header, then per
/// frame a 12-byte header (32-bit little-endian size, 64-bit timestamp) and the frame.
/// The frames of an IVF file, or none when it is not one.
func ivfFrames(_ file: [UInt8]) -> [[UInt8]] {
    (try? IVFFile(file))?.frames.map(\.data) ?? []
}

/// The NAL units of an Annex-B H.264 stream, split at start codes (00 00 01, 00 00 00 01).
func annexBNALUnits(_ stream: [UInt8]) -> [[UInt8]] {
    var starts: [Int] = []
    var i = 0
    while i + 2 < stream.count {
        if stream[i] == 0, stream[i + 1] == 0, stream[i + 2] == 1 {
            starts.append(i + 3)
            i += 3
        } else {
            i += 1
        }
    }
    var units: [[UInt8]] = []
    for (k, start) in starts.enumerated() {
        var end = k + 1 < starts.count ? starts[k + 1] - 3 : stream.count
        while end > start, stream[end - 1] == 0 { end -= 1 }  // a 4-byte start code's zero, trailing zeros
        if end > start { units.append(Array(stream[start..<end])) }
    }
    return units
}

/// A deterministic random source (SplitMix64), so that a failing shuffle can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// RTP packets of a stream as a sender numbers them: sequence numbers and timestamps start just
/// before their wraps, so that every round trip also crosses both.
struct TestRTPSender {
    var sequenceNumber: UInt16 = 65_500
    var timestampBase: UInt32 = 0xFFFF_F000
    /// RTP clock ticks per frame (90 kHz at 30 frames/s).
    var ticksPerFrame: UInt32 = 3000

    /// The packets of frame `index`, whose payloads are `payloads`; the marker on the last one.
    mutating func packets(frame index: Int, _ payloads: [[UInt8]]) -> [ReceivedPacket] {
        let timestamp = timestampBase &+ UInt32(index) &* ticksPerFrame
        return payloads.enumerated().map { i, payload in
            defer { sequenceNumber &+= 1 }
            return ReceivedPacket(
                sequenceNumber: sequenceNumber, timestamp: timestamp, marker: i == payloads.count - 1,
                payloadType: 96, ssrc: 0x1234_5678, payload: payload)
        }
    }

    /// The extended timestamp the assembler reports for frame `index`.
    func extendedTimestamp(frame index: Int) -> Int64 {
        Int64(timestampBase) + Int64(index) * Int64(ticksPerFrame)
    }
}

/// Sends `packets` through a network that delays each by up to `jitterNanos` (so they arrive out
/// of order, within the reorder horizon) and drops those whose index is in `dropped`, then through
/// a ReorderBuffer into `assembler`. Returns the frames in the order they came out.
func transmit(
    _ packets: [ReceivedPacket], through assembler: inout any VideoFrameAssembler,
    jitterNanos: UInt64 = 40_000_000, dropped: Set<Int> = [], seed: UInt64 = 1
) -> [VideoFrame] {
    var random = SeededGenerator(seed: seed)
    var arrivals: [ReceivedPacket] = []
    for (i, var p) in packets.enumerated() where !dropped.contains(i) {
        p.arrivalNanos = UInt64(i) * 1_000_000 + UInt64.random(in: 0...jitterNanos, using: &random)
        arrivals.append(p)
    }
    arrivals.sort { $0.arrivalNanos < $1.arrivalNanos }
    var buffer = ReorderBuffer()
    var frames: [VideoFrame] = []
    func feed(_ released: [(packet: ReceivedPacket, lossBefore: Bool)]) {
        for r in released { frames += assembler.push(r.packet, lossBefore: r.lossBefore) }
    }
    for p in arrivals {
        _ = buffer.insert(p)
        feed(buffer.release(now: p.arrivalNanos))
    }
    feed(buffer.drain())
    return frames
}

/// Splits `bytes` into pieces of at most `size` bytes.
func chunks(_ bytes: [UInt8], of size: Int) -> [[UInt8]] {
    stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
}

/// The payload MTU of the test packetizers, about what WebRTC senders use.
let testMTU = 1200
