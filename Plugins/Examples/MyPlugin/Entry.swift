import PluginAPI
import PluginKit

/// The library's only export: the descriptor of the MyPlugin plugin.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "example.plugin.myplugin",
            name: "MyPlugin",
            description: "Echoes text back, synchronously or as an event.",
            author: "Example Ltd",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in MyPlugin(host: host) }
    )
}
