import ArgumentParser
import Foundation
import Host
import Logging
import RecorderCore
import ServiceLifecycle

/// The `atrium` command: run the server, or check a configuration.
@main
struct Atrium: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atrium",
        abstract: "A WebRTC conference server that speaks the Janus API, with plugins for every feature.",
        subcommands: [Serve.self, CheckConfig.self, Recording.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the server (the default).")

    @Option(name: .long, help: "The configuration file.")
    var config: String = "config/config.json"

    func run() async throws {
        let hostConfig: HostConfig
        do {
            hostConfig = try HostConfig.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("atrium: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: hostConfig.logLevel) ?? .info
            return handler
        }
        let logger = Logger(label: "atrium")
        let host: AtriumHost
        do {
            host = try AtriumHost(config: hostConfig, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            FileHandle.standardError.write(Data("atrium: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let group = ServiceGroup(configuration: .init(
            services: [host],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file (and load its plugins) without starting; exit 2 if it is bad."
    )

    @Argument(help: "The configuration file.")
    var path: String = "config/config.json"

    func run() async throws {
        let hostConfig: HostConfig
        do {
            hostConfig = try HostConfig.load(path: path)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
        var logger = Logger(label: "atrium.check-config")
        logger.logLevel = .error
        do {
            let host = try AtriumHost(config: hostConfig, logger: logger)
            await host.shutdown()
        } catch {
            FileHandle.standardError.write(Data("\(path): \(error)\n".utf8))
            throw ExitCode(2)
        }
        print("\(path): OK (\(hostConfig.plugins.filter(\.enabled).count) plugins enabled)")
    }
}

struct Recording: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recording",
        abstract: "Work with the Recorder's files.",
        subcommands: [Repair.self]
    )

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "repair",
            abstract: "Finish WebM/MKV files a crash left open: cut a torn last block, add Cues and Duration. A folder repairs every such file in it; finished files are left as they are."
        )

        @Argument(help: "Recording files (.webm, .mkv) or recording folders.")
        var paths: [String]

        func run() throws {
            var failed = false
            for path in paths {
                for file in Self.files(at: path) {
                    do {
                        let report = try MatroskaRepair.repair(path: file)
                        if report.alreadyFinished {
                            print("\(file): already finished")
                        } else {
                            print("\(file): repaired: \(report.clusters) clusters, \(report.blocks) blocks, \(report.durationMillis) ms, \(report.truncatedBytes) torn bytes cut")
                        }
                    } catch {
                        failed = true
                        FileHandle.standardError.write(Data("\(file): \(error)\n".utf8))
                    }
                }
            }
            if failed { throw ExitCode(1) }
        }

        /// The file itself, or the .webm and .mkv files under a folder (sorted).
        static func files(at path: String) -> [String] {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { return [path] }
            let found = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
            return found.filter { $0.hasSuffix(".webm") || $0.hasSuffix(".mkv") }.sorted().map { (path as NSString).appendingPathComponent($0) }
        }
    }
}
