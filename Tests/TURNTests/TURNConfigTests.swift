import AtriumJSON
import Testing
@testable import TURNCore

@Suite struct TURNConfigTests {
    func parse(_ text: String) throws(TURNConfigError) -> TURNConfig {
        try TURNConfig((try? JSON.parse(text))?.objectValue ?? [:])
    }

    @Test func emptyObjectGivesTheDocumentedDefaults() throws {
        let c = try parse("{}")
        #expect(c.realm == "atrium" && c.udpPort == 3478 && c.tcpPort == 3478 && c.tlsPort == 5349)
        #expect(c.minPort == 49_152 && c.maxPort == 65_535 && c.defaultLifetimeSeconds == 600 && c.maxLifetimeSeconds == 3_600)
        #expect(c.users.isEmpty && c.secrets.isEmpty && c.allowedPeerIPs.isEmpty)
        #expect(c.sha256Credentials && !c.advertiseUserhash)
    }

    @Test func valuesAreRead() throws {
        let c = try parse(#"{"realm":"r","udp_port":null,"users":{"alice":"pw"},"secrets":["s1","s2"],"allowed_peer_ips":["10.99.0.0/24"],"relay_addresses":["10.99.0.1"]}"#)
        #expect(c.realm == "r" && c.udpPort == nil && c.users == ["alice": "pw"] && c.secrets == ["s1", "s2"])
        #expect(c.allowedPeerIPs == ["10.99.0.0/24"] && c.relayAddresses.map(\.description) == ["10.99.0.1"])
    }

    @Test(arguments: [
        (#"{"realm":""}"#, "config.realm"),
        (#"{"udp_port":70000}"#, "config.udp_port"),
        (#"{"users":{"a:b":"x"}}"#, "config.users"),
        (#"{"users":{"a":5}}"#, "config.users.a"),
        (#"{"secrets":"one"}"#, "config.secrets"),
        (#"{"listen":["nowhere"]}"#, "config.listen[0]"),
        (#"{"certificate_file":"c.pem"}"#, "config: certificate_file"),
        (#"{"min_port":50000,"max_port":50000}"#, "config.max_port"),
        (#"{"relay_addresses":["10.0.0.1","10.0.0.2"]}"#, "config.relay_addresses"),
        (#"{"colour":"blue"}"#, "config.colour"),
        (#"{"sha256_credentials":"yes"}"#, "config.sha256_credentials"),
        (#"{"advertise_userhash":true}"#, "config.advertise_userhash"),
    ])
    func wrongValuesNameTheirKey(text: String, key: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(key), "\(error)")
        }
    }
}
