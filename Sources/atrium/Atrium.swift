import ArgumentParser
import Foundation
import Host
import Logging
import ServiceLifecycle

/// The `atrium` command: run the server, or check a configuration.
@main
struct Atrium: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atrium",
        abstract: "A WebRTC conference server that speaks the Janus API, with plugins for every feature.",
        subcommands: [Serve.self, CheckConfig.self],
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
