// swift-tools-version: 6.1
import PackageDescription
import class Foundation.ProcessInfo

/// One set of settings for every Swift target.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// A Swift plugin: a dynamic library `libatrium_<name>.so` loaded by the host with `dlopen`.
func plugin(_ name: String, target: String, path: String, extraDependencies: [Target.Dependency] = [], exclude: [String] = ["README.md"]) -> (Product, Target) {
    (
        .library(name: "atrium_\(name)", type: .dynamic, targets: [target]),
        .target(
            name: target,
            dependencies: ["PluginAPI", "PluginKit", "AtriumJSON"] + extraDependencies,
            path: path,
            exclude: exclude,
            swiftSettings: swiftSettings,
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/PluginAPI/atrium_plugin.exports"])]
        )
    )
}

let plugins = [
    // Chat rooms (ChatCore holds the stream links between a room's chat and its viewers' chat, unit-tested).
    plugin("chat", target: "ChatPlugin", path: "Plugins/Chat", extraDependencies: ["ChatCore"], exclude: ["README.md", "Core"]),
    plugin("echotest", target: "EchoTestPlugin", path: "Plugins/EchoTest", extraDependencies: ["RTC"]),
    // The TURN server: its protocol logic (TURNCore, unit-tested) and the plugin that runs the sockets.
    plugin("turn", target: "TURNPlugin", path: "Plugins/TURN/Plugin", extraDependencies: ["RTC", "TURNCore", "COpenSSL"], exclude: []),
    // The SFU: its forwarding logic and room settings (SFUCore, unit-tested) and the VideoRoom-compatible plugin.
    plugin("sfu", target: "SFUPlugin", path: "Plugins/SFU/Plugin", extraDependencies: ["RTC", "SFUCore"], exclude: []),
    // The Recorder: a tap plugin writing meetings to disk (RecorderCore holds the formats and the engine).
    plugin("recorder", target: "RecorderPlugin", path: "Plugins/Recorder/Plugin", extraDependencies: ["RTC", "RecorderCore"], exclude: []),
    // The Swift example of docs/plugin-guide.md, built so that the guide's quote of it compiles.
    plugin("myplugin", target: "MyPlugin", path: "Plugins/Examples/MyPlugin"),
]

/// What the fuzz harnesses reach: the parsers a client's bytes arrive at, and (FuzzHostTargets)
/// the host's HTTP transport and Janus API dispatcher.
let fuzzDependencies: [Target.Dependency] = ["AtriumJSON", "RTC", "TURNCore", "RecorderCore"]
let fuzzHostDependencies: [Target.Dependency] = [
    "Host",
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "Logging", package: "swift-log"),
]

let package = Package(
    name: "Atrium",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "atrium", targets: ["atrium"]),
        .executable(name: "atrium-bench", targets: ["atrium-bench"]),
        .library(name: "Host", targets: ["Host"]),
        // For plugins built in other packages: the ABI header and the Swift conveniences.
        .library(name: "PluginKit", targets: ["PluginKit", "PluginAPI", "AtriumJSON"]),
    ] + plugins.map(\.0),
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // The ABI: one C header, no code of its own.
        .target(name: "PluginAPI", path: "Sources/PluginAPI", exclude: ["atrium_plugin.exports"]),

        // System libraries, found through pkg-config.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        // The socket calls Glibc's module leaves out (sendmmsg).
        .systemLibrary(name: "CSockets", path: "Sources/CSockets"),

        .target(name: "AtriumJSON", swiftSettings: swiftSettings),
        // The WebRTC transport stack, usable as server (the host) and as client (tests, load generator).
        .target(name: "RTC", dependencies: ["COpenSSL", "CSRTP", "CSockets"], swiftSettings: swiftSettings),
        .target(name: "PluginKit", dependencies: ["PluginAPI", "AtriumJSON"], swiftSettings: swiftSettings),
        // TURN (RFC 8656) without sockets: authentication, peer policy, allocations; the TURN plugin runs it.
        .target(name: "TURNCore", dependencies: ["RTC", "AtriumJSON", "COpenSSL"], path: "Plugins/TURN/Core", swiftSettings: swiftSettings),
        // The Chat plugin's stream links without the plugin: which chat a message may go to.
        .target(name: "ChatCore", dependencies: ["AtriumJSON"], path: "Plugins/Chat/Core", swiftSettings: swiftSettings),
        // The SFU's forwarding logic without the plugin: continuity, simulcast choice, audio levels, room settings.
        .target(name: "SFUCore", dependencies: ["AtriumJSON", "PluginKit"], path: "Plugins/SFU/Core", swiftSettings: swiftSettings),
        // The Recorder without the plugin: RTP reordering and depacketizing, Matroska/WebM and Ogg Opus
        // writers, repair of files left by a crash.
        .target(name: "RecorderCore", dependencies: ["RTC", "AtriumJSON", "PluginKit"], path: "Plugins/Recorder/Core", swiftSettings: swiftSettings),
        .target(
            name: "Host",
            dependencies: [
                "PluginAPI", "AtriumJSON", "RTC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "atrium",
            dependencies: [
                "Host", "RecorderCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // The load generator (`make bench`): drives Atrium or Janus through the Janus API with
        // synthetic media on RTC's client side, and measures the SRTP+sendmmsg floor.
        .executableTarget(
            name: "atrium-bench",
            dependencies: ["RTC", "AtriumJSON", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/AtriumBench",
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "AtriumJSONTests", dependencies: ["AtriumJSON"], swiftSettings: swiftSettings),
        .testTarget(name: "RTCTests", dependencies: ["RTC"], resources: [.copy("Fixtures")], swiftSettings: swiftSettings),
        .testTarget(name: "TURNTests", dependencies: ["TURNCore", "RTC"], swiftSettings: swiftSettings),
        .testTarget(name: "ChatTests", dependencies: ["ChatCore", "AtriumJSON"], swiftSettings: swiftSettings),
        .testTarget(name: "SFUTests", dependencies: ["SFUCore", "AtriumJSON"], swiftSettings: swiftSettings),
        .testTarget(name: "PluginKitTests", dependencies: ["PluginKit", "AtriumJSON"], swiftSettings: swiftSettings),
        .testTarget(name: "RecorderTests", dependencies: ["RecorderCore", "RTC", "AtriumJSON", "PluginKit"], swiftSettings: swiftSettings),
        .testTarget(name: "HostTests", dependencies: ["Host", "AtriumJSON", "PluginAPI"], swiftSettings: swiftSettings),
        // The fuzz harnesses' entry functions, replayed over the committed regression corpus
        // (Tests/Fuzz/Corpus). `make fuzz` builds the same sources as the FuzzTargets library below.
        .testTarget(
            name: "FuzzTests",
            dependencies: fuzzDependencies + fuzzHostDependencies,
            path: "Tests/Fuzz",
            exclude: ["Driver", "Harnesses", "Corpus", "Dictionaries", "README.md", "cover_corpus.py"],
            sources: ["Targets", "HostTargets", "Replay"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SystemLibrariesTests",
            dependencies: ["COpenSSL", "CSRTP", "CJansson"],
            swiftSettings: swiftSettings
        ),
    ] + plugins.map(\.1)
)

// Benchmarks (`make bench`): only when ATRIUM_BENCHMARKS is set, so that the ordinary build and
// `make test` never compile the benchmark tooling.
if ProcessInfo.processInfo.environment["ATRIUM_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets.append(
        .executableTarget(
            name: "RTCBenchmarks",
            dependencies: ["RTC", "SFUCore", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/RTCBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    )
}

// libFuzzer harnesses (`make fuzz`): only when ATRIUM_FUZZ is set, since they link libFuzzer's
// runtime (`-sanitize=fuzzer`) and so never belong in the ordinary build. One executable per harness;
// the entry functions live in FuzzTargets and FuzzHostTargets, the same sources the FuzzTests corpus
// replay compiles in the ordinary build.
let fuzzHarnesses = [
    "json", "sdp", "stun", "turn", "rtp", "rtcp", "vp8", "vp9", "h264", "av1", "opus",
    "matroska-repair", "http", "janus-api", "tls",
]
if ProcessInfo.processInfo.environment["ATRIUM_FUZZ"] != nil {
    package.targets.removeAll { $0.name == "FuzzTests" }
    package.targets += [
        .target(name: "FuzzTargets", dependencies: fuzzDependencies, path: "Tests/Fuzz/Targets", swiftSettings: swiftSettings),
        .target(name: "FuzzDriver", path: "Tests/Fuzz/Driver", swiftSettings: swiftSettings),
        // Apart, so that the parser harnesses build while the host does not.
        .target(
            name: "FuzzHostTargets", dependencies: ["FuzzTargets", "AtriumJSON"] + fuzzHostDependencies, path: "Tests/Fuzz/HostTargets",
            swiftSettings: swiftSettings
        ),
    ]
    for harness in fuzzHarnesses {
        package.targets.append(
            .executableTarget(
                name: "fuzz-\(harness)",
                dependencies: ["FuzzDriver", ["http", "janus-api"].contains(harness) ? "FuzzHostTargets" : "FuzzTargets"],
                path: "Tests/Fuzz/Harnesses/\(harness)",
                swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
            )
        )
    }
}
