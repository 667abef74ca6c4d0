import Foundation
@testable import Host
#if canImport(FuzzTargets)
import FuzzTargets
#endif
import Logging

/// One host core for the process, built from in-memory JSON as the Host tests build theirs: no
/// plugins (loading plugin libraries into a fuzzer is more than it is worth), media bound to
/// loopback port 0 and never started, so nothing is sent anywhere.
enum InMemoryHost {
    static let core: HostCore = {
        let text = #"{"http":{"bind":"127.0.0.1","port":0},"websocket":{"bind":"127.0.0.1","port":0},"media":{"bind":"127.0.0.1","udp_port":0},"plugins":[]}"#
        do {
            let config = try HostConfig.parse(bytes: Array(text.utf8))
            var logger = Logger(label: "fuzz")
            logger.logLevel = .critical
            return HostCore(config: config, plugins: [], loops: try MediaLoops(config: config.media, logger: logger), logger: logger)
        } catch {
            fuzzFailure("cannot build the in-memory host: \(error)")
        }
    }()

    /// Destroys every session, so that one input's sessions do not pile up under the next.
    static func destroyAllSessions() {
        let sessions = core.registry.withLock { Array($0.sessions.values) }
        for session in sessions { core.destroySession(session, reason: "fuzz") }
    }
}
