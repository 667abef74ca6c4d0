import PluginAPI
import PluginKit

/// The library's only export: the EchoTest plugin's descriptor.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "atrium.plugin.echotest",
            name: "EchoTest",
            description: "Sends a peer's audio and video back to it; answers Janus EchoTest requests.",
            author: "The Atrium authors",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in EchoTestPlugin(host: host) }
    )
}
