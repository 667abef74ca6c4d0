import PluginAPI
import PluginKit

/// The library's only export: the SFU plugin's descriptor.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "atrium.plugin.sfu",
            name: "SFU",
            description: "Multi-party rooms that forward audio and video; answers Janus VideoRoom requests.",
            author: "The Atrium authors",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in SFUPlugin(host: host) }
    )
}
