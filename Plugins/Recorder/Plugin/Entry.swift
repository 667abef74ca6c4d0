import PluginAPI
import PluginKit

/// The library's only export: the Recorder plugin's descriptor.
@c(atrium_plugin_entry)
public func atriumPluginEntry() -> UnsafePointer<atrium_plugin_entry_t> {
    PluginEntry.make(
        PluginDescriptor(
            id: "atrium.plugin.recorder",
            name: "Recorder",
            description: "Records meetings as they happen: one WebM per participant, chat transcript, manifest; files play at once and survive a crash.",
            author: "The Atrium authors",
            versionString: "0.1.0",
            version: 1
        ),
        factory: { host in RecorderPlugin(host: host) }
    )
}
