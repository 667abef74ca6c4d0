import Dispatch
import Foundation
import Logging
import Synchronization

/// When listeners read their certificate files again: on SIGHUP, and when a poll every
/// `interval` sees the files changed (a certbot renewal needs no signal). SIGHUP no longer ends
/// the process once this runs, with or without certificates to reload.
final class CertificateReloads: Sendable {
    static let interval = DispatchTimeInterval.seconds(2)
    private let listeners: [(name: String, certificate: ListenerCertificate)]
    private let logger: Logger
    /// Dispatch sources are thread-safe, but not marked Sendable.
    private struct Sources: @unchecked Sendable { var running: [any DispatchSourceProtocol] = [] }
    private let sources = Mutex(Sources())

    init(listeners: [(name: String, certificate: ListenerCertificate)], logger: Logger) {
        self.listeners = listeners
        self.logger = logger
    }

    func start() {
        let queue = DispatchQueue(label: "atrium.tls.reloads")
        signal(SIGHUP, SIG_IGN)
        let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        hangUp.setEventHandler { [self] in
            if listeners.isEmpty { logger.notice("SIGHUP: no TLS certificate files to read again") }
            for (name, certificate) in listeners { certificate.reload(logger: logger, listener: name, why: "SIGHUP") }
        }
        hangUp.resume()
        sources.withLock { $0.running.append(hangUp) }
        guard listeners.contains(where: { $0.certificate.settings.certificateFile != nil }) else { return }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + Self.interval, repeating: Self.interval)
        timer.setEventHandler { [self] in
            for (name, certificate) in listeners { certificate.reloadIfChanged(logger: logger, listener: name) }
        }
        timer.resume()
        sources.withLock { $0.running.append(timer) }
    }

    func stop() {
        let running = sources.withLock { s in
            defer { s.running.removeAll() }
            return s.running
        }
        for source in running { source.cancel() }
    }
}
