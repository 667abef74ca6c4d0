import PluginAPI
import PluginKit

/// The library's only export: the Chat plugin's descriptor.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "atrium.plugin.chat",
            name: "Chat",
            description: "Chat rooms over the Janus API: broadcast, private messages, history, limits.",
            author: "The Atrium authors",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in ChatPlugin(host: host) }
    )
}
