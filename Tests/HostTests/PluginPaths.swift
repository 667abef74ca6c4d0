import Foundation
import Testing

/// Finds the freshly built plugin libraries: `ATRIUM_PLUGINS_DIR`, else the folder of the test
/// binary and its parents (SwiftPM puts products and the test bundle in the same build folder).
enum PluginPaths {
    static func directory() throws -> String {
        if let env = ProcessInfo.processInfo.environment["ATRIUM_PLUGINS_DIR"], !env.isEmpty { return env }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("libatrium_chat.so").path) { return url.path }
            url = url.deletingLastPathComponent()
        }
        Issue.record("libatrium_chat.so not found near \(CommandLine.arguments[0]): run `swift build` first, or set ATRIUM_PLUGINS_DIR")
        throw CancellationError()
    }
}
