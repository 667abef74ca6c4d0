import PluginAPI
import PluginKit

/// The library's only export: the TURN plugin's descriptor.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "atrium.plugin.turn",
            name: "TURN",
            description: "A TURN server (RFC 8656) on UDP, TCP and TLS, with credentials for clients of this server.",
            author: "The Atrium authors",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in TURNPlugin(host: host) }
    )
}
