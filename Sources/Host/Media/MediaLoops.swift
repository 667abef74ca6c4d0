import Foundation
import Logging
import RTC
import Synchronization

/// The host's media loops (`media.threads` of them), each a `MediaEngine` with its own thread and
/// ports, and where each handle's PeerConnection lives. Every loop shows peers the same DTLS
/// certificate and addresses; only the ports differ (docs/decisions.md says why one port per loop).
final class MediaLoops: Sendable {
    let engines: [MediaEngine]
    /// The addresses candidates name (media.advertised_addresses, or the machine's own).
    let advertised: [IPAddress]
    private let placement: Mutex<LoopPlacement>

    init(config: HostConfig.Media, logger: Logger) throws(MediaSocketError) {
        let certificate: DTLSCertificate
        do {
            if let certificateFile = config.certificateFile, let keyFile = config.keyFile {
                let certificatePEM = try String(contentsOfFile: certificateFile, encoding: .utf8)
                let keyPEM = try String(contentsOfFile: keyFile, encoding: .utf8)
                certificate = try DTLSCertificate.load(certificatePEM: certificatePEM, keyPEM: keyPEM)
            } else {
                certificate = try DTLSCertificate.generate()
            }
        } catch {
            throw MediaSocketError(description: "DTLS certificate (media.certificate_file/key_file): \(error)")
        }
        var advertised = config.advertisedAddresses.compactMap { IPAddress($0) }
        if advertised.isEmpty, let bound = IPAddress(config.bind), bound != .v4(0), bound != .v6(0, 0) { advertised = [bound] }
        if advertised.isEmpty { advertised = interfaceAddresses(bind: config.bind) }
        if advertised.isEmpty {
            logger.warning("no address but loopback: advertising 127.0.0.1 (set media.advertised_addresses)")
            advertised = [.v4(0x7F00_0001)]
        }
        var engines: [MediaEngine] = []
        for index in 0..<max(1, config.threads) {
            engines.append(try MediaEngine(index: index, config: config, certificate: certificate, addresses: advertised, logger: logger))
        }
        self.engines = engines
        self.advertised = advertised
        placement = Mutex(LoopPlacement(loops: engines.count))
    }

    func start() throws(MediaSocketError) {
        for engine in engines { try engine.start() }
    }

    /// Stops every loop (after each has closed its PeerConnections).
    func stop() {
        for engine in engines { engine.stop() }
    }

    /// The loop the handle's PeerConnection lives on, or nil while it never had one.
    func engine(of handle: Handle) -> MediaEngine? {
        placement.withLock { $0.loop(of: handle.id) }.map { engines[$0] }
    }

    /// The handle's loop, chosen now if it has none (when its first PeerConnection is set up).
    func place(_ handle: Handle) -> MediaEngine {
        engines[placement.withLock { $0.place(handle.id) }]
    }

    /// A plugin's group for the handle (0: none). A handle already placed on another loop than its
    /// group's moves there if its PeerConnection has not been answered yet (a client's offer the
    /// plugin answers after this call, as with `joinandconfigure`): no candidate of the old loop
    /// has been given out, so no packet can be on its way there. Control context of the plugin.
    func setGroup(_ handle: Handle, _ group: UInt64) {
        let key = group == 0 ? nil : LoopPlacement.GroupKey(plugin: handle.plugin.queueTag, group: group)
        let move = placement.withLock { p in
            p.setGroup(handle.id, key)
            return p.misplaced(handle.id)
        }
        guard let move else { return }
        let from = engines[move.from], to = engines[move.to]
        guard let peer = from.sync({ from.releaseUnanswered(handle) }) else { return }
        placement.withLock { $0.move(handle.id, to: move.to) }
        to.sync { to.adopt(peer) }
    }

    /// Forgets a handle that is gone (after its PeerConnection closed).
    func remove(_ handle: Handle) {
        placement.withLock { $0.remove(handle.id) }
    }

    /// The loop that announced a tap stream (its id carries the loop), or nil for an id no loop gave.
    func engine(ofTapStream id: UInt64) -> MediaEngine? {
        let index = id >> MediaEngine.tapLoopShift
        return index < UInt64(engines.count) ? engines[Int(index)] : nil
    }

    /// Handles placed on each loop, and the groups that hold a loop (for /metrics and admin).
    var load: (handlesOnLoop: [Int], groups: Int) {
        placement.withLock { ($0.handlesOnLoop, $0.groupCount) }
    }
}
