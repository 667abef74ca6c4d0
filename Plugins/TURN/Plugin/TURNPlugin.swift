import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import TURNCore

/// Runs the TURN server as a plugin service, and answers `{"request":"credentials"}` on a handle
/// with TURN REST credentials minted from the first secret, so a web page gets working
/// `iceServers` with no set-up. docs/api/turn.md has the requests and the configuration.
final class TURNPlugin: AtriumPlugin {
    let host: PluginHost
    private var config = TURNConfig()
    private var auth: Authenticator?
    private var policy = PeerPolicy()
    private let metrics = TURNMetrics()
    private var loop: TURNLoop?
    /// Which sessions are in a meeting (the SFU's and the Chat plugin's `presence` events), and
    /// how many credentials each client address took in the last minute. Control context only.
    private var presence = RoomPresence()
    private var credentialBudget = RateBudget(limit: 10)

    init(host: PluginHost) { self.host = host }

    func start(config object: JSONObject) throws(PluginFailure) {
        do {
            config = try TURNConfig(object)
        } catch {
            throw PluginFailure(error.description)
        }
        var allowed = try cidrs(config.allowedPeerIPs, key: "allowed_peer_ips")
        if config.allowOwnAddresses {
            allowed += machineAddresses().compactMap { CIDR($0.description) }
        }
        policy = PeerPolicy(allowed: allowed, denied: try cidrs(config.deniedPeerIPs, key: "denied_peer_ips"))
        credentialBudget = RateBudget(limit: config.credentialsPerAddressPerMinute)
        var secrets = config.secrets
        if secrets.isEmpty {
            // No secret configured: one made now, so `credentials` works out of the box. Credentials
            // it minted end with the process.
            secrets = [base64(randomBytes(24))]
            host.log(.info, "TURN: no secrets configured; generated one for this run")
        }
        auth = Authenticator(realm: config.realm, users: config.users, secrets: secrets, nonceSeconds: config.nonceSeconds,
                             sha256: config.sha256Credentials, userhash: config.advertiseUserhash)
    }

    private func cidrs(_ texts: [String], key: String) throws(PluginFailure) -> [CIDR] {
        var out: [CIDR] = []
        for (i, text) in texts.enumerated() {
            guard let cidr = CIDR(text) else { throw PluginFailure("config.\(key)[\(i)]: \"\(text)\" is not an address or CIDR block") }
            out.append(cidr)
        }
        return out
    }

    // MARK: - Service

    var hasService: Bool { true }

    func startService() throws(PluginFailure) {
        guard let auth else { throw PluginFailure("TURN: not configured") }
        do {
            let loop = try TURNLoop(config: config) { [host] in host.log(.info, $0) }
            let server = TURNServer(config: config, auth: auth, policy: policy, metrics: metrics, io: loop)
            try loop.start(server: server) { loop in
                server.ownAddresses = Set(machineAddresses() + loop.relayAddresses + config.listen)
                server.ownPorts = Set([TURNLoop.ListenerKind.udp, .tcp, .tls].compactMap { loop.boundPort($0) })
            }
            self.loop = loop
            host.log(.info, "TURN listening on \(loop.listening.joined(separator: ", ")); relaying from \(loop.relayAddresses.map(\.description).joined(separator: ", ")) ports \(config.minPort)-\(config.maxPort)")
        } catch {
            throw PluginFailure("TURN: \(error)")
        }
    }

    func stopService() {
        loop?.stop()
        loop = nil
    }

    func serviceHealth() -> JSONObject {
        ["ok": .bool(loop != nil), "allocations": .int(Int64(metrics.allocations.load(ordering: .relaxed)))]
    }

    func metricsText() -> String { metrics.prometheus }

    // MARK: - Who is in a meeting

    var subscribesToEvents: Bool { true }

    func receiveEvent(source: String, topic: String, event: JSONObject) {
        presence.apply(source: source, topic: topic, event: event)
    }

    // MARK: - Requests

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        guard let request = body["request"]?.stringValue else {
            return .reply(Self.error(440, "missing \"request\" (a string)"))
        }
        switch request {
        case "credentials":
            // A relay is worth handing out only to someone in a meeting, and a client must not
            // mint identities without end (each gets max_allocations_per_user afresh).
            if config.credentialsNeedMeeting, !presence.isInMeeting(session: handle.sessionID) {
                return .reply(Self.error(442, "not in a meeting: join a room (SFU or chat) on this session before asking for credentials"))
            }
            let address = handle.clientAddress
            if !address.isEmpty, !credentialBudget.take(address, now: monotonicNanoseconds()) {
                return .reply(Self.error(443, "too many credentials asked for from your address (at most \(config.credentialsPerAddressPerMinute) a minute)"))
            }
            return .reply(credentials(for: handle))
        default:
            return .reply(Self.error(441, "unknown request \"\(request)\" (the TURN plugin knows: credentials)"))
        }
    }

    static func error(_ code: Int64, _ text: String) -> JSON {
        ["turn": "error", "error_code": .int(code), "error": .string(text)]
    }

    /// `iceServers` as RTCPeerConnection takes them, with REST credentials for this handle.
    private func credentials(for handle: PluginHandle) -> JSON {
        guard let auth, let loop,
            let minted = auth.mint(user: "h\(handle.id)", ttlSeconds: config.credentialTTLSeconds, now: unixSeconds())
        else { return Self.error(500, "the TURN service is not running") }
        let hostText: String
        if let advertised = config.advertisedHost {
            hostText = advertised
        } else if let ip = loop.relayAddresses.first {
            hostText = ip.isIPv4 ? ip.description : "[\(ip)]"
        } else {
            hostText = "127.0.0.1"
        }
        var urls: [JSON] = []
        if let port = loop.boundPort(.udp) { urls.append(.string("turn:\(hostText):\(port)?transport=udp")) }
        if let port = loop.boundPort(.tcp) { urls.append(.string("turn:\(hostText):\(port)?transport=tcp")) }
        if let port = loop.boundPort(.tls) { urls.append(.string("turns:\(hostText):\(port)?transport=tcp")) }
        return [
            "turn": "credentials",
            "iceServers": [["urls": .array(urls), "username": .string(minted.username), "credential": .string(minted.password)]],
            "ttl": .int(Int64(config.credentialTTLSeconds)),
        ]
    }
}
