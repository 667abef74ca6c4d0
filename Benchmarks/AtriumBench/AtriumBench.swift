import ArgumentParser
import AtriumJSON
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// atrium-bench: a WebRTC load generator speaking the Janus API and VideoRoom requests, so the
/// same scenario drives Atrium and Janus alike; and the floor that forwarding cannot beat.
@main
struct AtriumBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atrium-bench",
        abstract: "Load generator for Janus-API SFUs (Atrium, Janus) and the SRTP+sendmmsg floor.",
        subcommands: [Run.self, FloorCommand.self]
    )
}

struct ShapeOptions: ParsableArguments {
    @Option(help: "Video bitrate, kbit/s.") var videoKbps = 1_500
    @Option(help: "Video packets per second.") var videoPps = 150
    @Option(help: "Video frames per second.") var fps = 30
    @Flag(inversion: .prefixedNo, help: "Also 50 audio packets/s per publisher.") var audio = true
    @Option(help: "Seconds of warm-up before each measuring window.") var warmup = 3.0
    @Option(help: "Seconds of each measuring window.") var window = 10.0
    @Option(help: "Address the client sockets bind to.") var bind = "10.99.0.1"
    @Option(help: "Write the JSON result here as well as to stdout.") var json: String?

    var shape: Pacer.Shape {
        Pacer.Shape(videoBitrate: videoKbps * 1000, videoPacketsPerSecond: videoPps, framesPerSecond: fps, audio: audio)
    }

    func emit(_ result: JSON) throws {
        let text = result.prettyPrinted()
        print(text)
        if let json {
            guard let file = fopen(json, "w") else { throw BenchError("cannot write \(json)") }
            fputs(text + "\n", file)
            fclose(file)
        }
    }
}

func steps(_ text: String) throws -> [Int] {
    let list = text.split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
    guard !list.isEmpty, list.allSatisfy({ $0 > 0 }), list == list.sorted() else {
        throw ValidationError("expected increasing positive numbers separated by commas, got \(text)")
    }
    return list
}

extension AtriumBench {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Drive one server through a scenario and measure it.")
        @Option(help: "The server's Janus HTTP API.") var url = "http://127.0.0.1:8088/janus"
        @Option(help: "The server's process id (CPU time and memory come from /proc).") var pid: Int32
        @Option(help: "A name for the server in the output.") var label = "server"
        @Option(help: "The VideoRoom-compatible plugin.") var plugin = "janus.plugin.videoroom"
        @Option(help: "Rooms.") var rooms = 1
        @Option(help: "The first room id (the bench creates and destroys them).") var firstRoom = 4_242
        @Option(help: "Publishers per room.") var publishers = 1
        @Option(help: "Subscribers per room, one step each (a ramp): e.g. 10,50.") var subscribers = "10,50"
        @Option(help: "Measuring windows per step; the median one (CPU per packet) is reported.") var rounds = 1
        @Option(help: "End the ramp after a step that lost more than this many percent.") var stopAboveLoss: Double?
        @Option(help: "End the ramp after a step whose packets waited longer than this (p99, ms).") var stopAboveLatency: Double?
        @Flag(help: "An N×N meeting: subscriber i of a room stands for its publisher i and receives every feed but that one (one step, equal to --publishers).")
        var meshed = false
        @OptionGroup var options: ShapeOptions

        func validate() throws {
            if meshed, (try? steps(subscribers)) != [publishers] {
                throw ValidationError("--meshed takes one subscriber step, equal to --publishers (everyone publishes and receives the others)")
            }
        }

        func run() throws {
            yieldToServers()  // before any thread starts: they all inherit it
            let scenario = Scenario(label: label, url: url, serverPID: pid, plugin: plugin, bind: options.bind, rooms: rooms,
                                    firstRoom: firstRoom, publishers: publishers, subscriberSteps: try steps(subscribers),
                                    meshed: meshed, shape: options.shape, warmupSeconds: options.warmup,
                                    windowSeconds: options.window, rounds: max(1, rounds),
                                    stopAboveLossPercent: stopAboveLoss ?? .infinity,
                                    stopAboveLatencyMilliseconds: stopAboveLatency ?? .infinity)
            try options.emit(try scenario.run())
        }
    }

    struct FloorCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "floor", abstract: "SRTP protect + sendmmsg of the same packets, no server.")
        @Option(help: "Receivers per packet, one step each: e.g. 10,50.") var subscribers = "10,50"
        @Option(help: "SRTP profile: SRTP_AEAD_AES_128_GCM or SRTP_AES128_CM_SHA1_80.") var profile = "SRTP_AEAD_AES_128_GCM"
        @Option(help: "Measurements per fan-out; the median one is reported.") var rounds = 1
        @OptionGroup var options: ShapeOptions

        func run() throws {
            guard let srtp = SRTPProfile(dtlsName: profile) else { throw ValidationError("unknown SRTP profile \(profile)") }
            let floor = Floor(bind: options.bind, fanouts: try steps(subscribers), profile: srtp, shape: options.shape,
                              warmupSeconds: options.warmup, windowSeconds: options.window, rounds: max(1, rounds))
            try options.emit(try floor.run())
        }
    }
}
