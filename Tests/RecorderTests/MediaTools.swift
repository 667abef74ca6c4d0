import Foundation
import Testing

/// A media tool the tests need is not installed. The tests fail rather than skip: a recording that
/// nobody played back is not tested.
struct MissingTool: Error, CustomStringConvertible {
    var tool: String
    var package: String
    var description: String { "\(tool) is not installed: install \(package) with `make deps-test`" }
}

/// What a tool did: its exit status and what it printed.
struct ToolRun {
    var status: Int32
    var stdout: Data
    var stderr: String
    var output: String { String(decoding: stdout, as: UTF8.self) }
}

/// ffmpeg, ffprobe, mkvmerge, mkvinfo and opusinfo, run as a person would run them on a recording.
enum MediaTool {
    private static let packages = ["ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "mkvmerge": "mkvtoolnix", "mkvinfo": "mkvtoolnix", "opusinfo": "opus-tools"]

    static func run(_ tool: String, _ arguments: [String]) throws -> ToolRun {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        guard let executable = directories.map({ "\($0)/\(tool)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw MissingTool(tool: tool, package: packages[tool] ?? tool)
        }
        // Output goes through files: two pipes read one after the other can deadlock on a full pipe.
        let scratch = try Scratch()
        defer { scratch.remove() }
        let out = scratch.path("stdout"), err = scratch.path("stderr")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        process.waitUntilExit()
        return ToolRun(
            status: process.terminationStatus,
            stdout: try Data(contentsOf: URL(fileURLWithPath: out)),
            stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: err)), as: UTF8.self)
        )
    }

    /// `ffmpeg -xerror` decoding every stream to nothing: the strictest "does it play" there is.
    static func decode(_ file: String) throws -> ToolRun {
        try run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", file, "-map", "0", "-f", "null", "-"])
    }

    /// The packet hashes of one stream, copied without decoding (`framemd5`): equal lists mean the
    /// payloads survived bit for bit, whatever the container.
    static func packetHashes(_ file: String, stream: String) throws -> [String] {
        let run = try run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", file, "-map", "0:\(stream)", "-c", "copy", "-f", "framemd5", "-"])
        guard run.status == 0 else { throw ToolFailure(run: run) }
        // stream, dts, pts, duration, size, hash, then side data (skip samples) that is not the payload.
        return run.output.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            let columns = $0.split(separator: ",")
            return columns.count > 5 ? columns[5].trimmingCharacters(in: .whitespaces) : nil
        }
    }

    /// Video frames ffprobe decodes from the first video stream.
    static func decodedVideoFrames(_ file: String) throws -> Int {
        let run = try run("ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file])
        return Int(run.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Samples per channel of the decoded audio, resampled to 48 kHz mono: the real length.
    static func decodedAudioSamples(_ file: String) throws -> Int {
        let run = try run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", file, "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        guard run.status == 0 else { throw ToolFailure(run: run) }
        return run.stdout.count / 2
    }

    /// `mkvmerge -J`: the JSON identification of a Matroska file.
    static func identify(_ file: String) throws -> [String: Any] {
        let run = try run("mkvmerge", ["-J", file])
        guard let json = try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any] else { throw ToolFailure(run: run) }
        return json
    }
}

struct ToolFailure: Error, CustomStringConvertible {
    var run: ToolRun
    var description: String { "exit \(run.status): \(run.stderr)" }
}

/// A directory of its own for one test, removed at its end.
struct Scratch {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "atrium-recorder-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

func fileBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

func writeFile(_ path: String, _ bytes: some Collection<UInt8>) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// An IVF file (the VP8 fixture): a 32-byte header, then frames of a 12-byte header and data.
struct IVFFile: Sendable {
    struct Frame: Sendable {
        var pts: Int64
        var data: [UInt8]
        /// VP8: bit 0 of the first byte is 0 on a keyframe (RFC 6386 §9.1).
        var isVP8Keyframe: Bool { data.first.map { $0 & 0x01 == 0 } ?? false }
    }

    var fourcc: String
    var width: Int
    var height: Int
    var timebaseNumerator: Int64
    var timebaseDenominator: Int64
    var frames: [Frame]

    init(_ bytes: [UInt8]) throws {
        func le(_ at: Int, _ count: Int) -> UInt64 { (0..<count).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        guard bytes.count >= 32, bytes[0..<4].elementsEqual("DKIF".utf8) else { throw FixtureError("not IVF") }
        let headerSize = Int(le(6, 2))
        fourcc = String(decoding: bytes[8..<12], as: UTF8.self)
        width = Int(le(12, 2))
        height = Int(le(14, 2))
        timebaseDenominator = Int64(le(16, 4))
        timebaseNumerator = Int64(le(20, 4))
        frames = []
        var at = headerSize
        while at + 12 <= bytes.count {
            let size = Int(le(at, 4))
            let pts = Int64(bitPattern: le(at + 4, 8))
            guard at + 12 + size <= bytes.count else { throw FixtureError("IVF frame cut off") }
            frames.append(Frame(pts: pts, data: Array(bytes[(at + 12)..<(at + 12 + size)])))
            at += 12 + size
        }
    }

    func millis(_ frame: Frame) -> Int64 {
        (frame.pts * 1000 * timebaseNumerator + timebaseDenominator / 2) / timebaseDenominator
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An Ogg page as read back, with a CRC computed bit by bit (not the writer's table) to check it.
struct OggPageRead {
    var offset: Int
    var length: Int
    var flags: UInt8
    var granule: Int64
    var serial: UInt32
    var sequence: UInt32
    var crc: UInt32
    var lacing: [UInt8]
    var body: [UInt8]
    var crcMatches: Bool

    var continued: Bool { flags & 0x01 != 0 }
    var beginsStream: Bool { flags & 0x02 != 0 }
    var endsStream: Bool { flags & 0x04 != 0 }

    /// The complete pages in `bytes`, from the start; a page cut off ends the list.
    static func pages(_ bytes: [UInt8]) -> [OggPageRead] {
        func le(_ at: Int, _ count: Int) -> UInt64 { (0..<count).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        var pages: [OggPageRead] = []
        var at = 0
        while at + 27 <= bytes.count, bytes[at..<(at + 4)].elementsEqual("OggS".utf8) {
            let segments = Int(bytes[at + 26])
            guard at + 27 + segments <= bytes.count else { break }
            let lacing = Array(bytes[(at + 27)..<(at + 27 + segments)])
            let bodyLength = lacing.reduce(0) { $0 + Int($1) }
            let length = 27 + segments + bodyLength
            guard at + length <= bytes.count else { break }
            var copy = Array(bytes[at..<(at + length)])
            let crc = UInt32(le(at + 22, 4))
            copy.replaceSubrange(22..<26, with: [0, 0, 0, 0])
            pages.append(OggPageRead(
                offset: at, length: length, flags: bytes[at + 5], granule: Int64(bitPattern: le(at + 6, 8)),
                serial: UInt32(le(at + 14, 4)), sequence: UInt32(le(at + 18, 4)), crc: crc,
                lacing: lacing, body: Array(bytes[(at + 27 + segments)..<(at + length)]), crcMatches: bitwiseCRC(copy) == crc
            ))
            at += length
        }
        return pages
    }

    /// Packets put back together from pages' lacing, each with the index of the page it ends on.
    static func packets(_ pages: [OggPageRead]) -> [(data: [UInt8], page: Int)] {
        var packets: [(data: [UInt8], page: Int)] = []
        var current: [UInt8] = []
        for (index, page) in pages.enumerated() {
            var at = 0
            for value in page.lacing {
                current.append(contentsOf: page.body[at..<(at + Int(value))])
                at += Int(value)
                if value < 255 {
                    packets.append((current, index))
                    current = []
                }
            }
        }
        return packets
    }

    static func bitwiseCRC(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0
        for byte in bytes {
            crc ^= UInt32(byte) << 24
            for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
        }
        return crc
    }
}

/// Samples at 48 kHz in an Opus packet, from its TOC byte (RFC 6716 §3.1).
func opusSamples(_ packet: [UInt8]) -> Int {
    guard let toc = packet.first else { return 0 }
    let config = Int(toc >> 3)
    let frameSize: Int = switch config {
    case 0...11: [480, 960, 1920, 2880][config % 4]
    case 12...15: [480, 960][config % 2]
    default: [120, 240, 480, 960][config % 4]
    }
    let frames = switch toc & 0x03 {
    case 0: 1
    case 1, 2: 2
    default: packet.count > 1 ? Int(packet[1] & 0x3F) : 0
    }
    return frameSize * frames
}

/// Encoded media made by ffmpeg once per test run: 3 s of VP8 (30 fps, a keyframe a second) and
/// 3 s of stereo Opus, with the packet hashes ffmpeg sees in the source files.
struct MediaFixtures: Sendable {
    var ivf: [UInt8]
    var video: IVFFile
    var videoHashes: [String]
    var ogg: [UInt8]
    var opusHead: [UInt8]
    var audioPackets: [[UInt8]]
    var audioHashes: [String]
    var channels: Int
    var preSkip: UInt16

    static let shared = Result { try MediaFixtures() }

    private init() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let ivf = scratch.path("video.ivf"), ogg = scratch.path("audio.ogg")
        for (arguments, output) in [
            (["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "3", "-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-f", "ivf"], ivf),
            (["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-f", "ogg"], ogg),
        ] {
            let run = try MediaTool.run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error"] + arguments + [output])
            guard run.status == 0 else { throw ToolFailure(run: run) }
        }
        self.ivf = try fileBytes(ivf)
        video = try IVFFile(self.ivf)
        videoHashes = try MediaTool.packetHashes(ivf, stream: "v:0")
        self.ogg = try fileBytes(ogg)
        let packets = OggPageRead.packets(OggPageRead.pages(self.ogg)).map(\.data)
        guard packets.count > 2, packets[0].starts(with: "OpusHead".utf8) else { throw FixtureError("no OpusHead in ffmpeg's Ogg") }
        opusHead = packets[0]
        channels = Int(opusHead[9])
        preSkip = UInt16(opusHead[10]) | UInt16(opusHead[11]) << 8
        audioPackets = Array(packets.dropFirst(2))
        audioHashes = try MediaTool.packetHashes(ogg, stream: "a:0")
    }
}
