import PluginAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a plugin could not be loaded, naming the plugin (its library or id) and the reason.
public struct PluginLoadError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Equatable, CustomStringConvertible {
        private enum Kind: String { case open, missingEntry, abiMismatch, invalidDescriptor, createFailed, missingFunction, initFailed, startFailed, duplicateID }
        private let kind: Kind
        public static let open = Code(kind: .open)
        public static let missingEntry = Code(kind: .missingEntry)
        public static let abiMismatch = Code(kind: .abiMismatch)
        public static let invalidDescriptor = Code(kind: .invalidDescriptor)
        public static let createFailed = Code(kind: .createFailed)
        public static let missingFunction = Code(kind: .missingFunction)
        public static let initFailed = Code(kind: .initFailed)
        public static let startFailed = Code(kind: .startFailed)
        public static let duplicateID = Code(kind: .duplicateID)
        public var description: String { kind.rawValue }
    }

    public var code: Code
    public var plugin: String
    public var reason: String

    public var description: String { "plugin \(plugin): \(reason)" }
}

/// An open shared library. The handle is never closed: a plugin's code may still be referenced by
/// a thread or a callback it registered, and the process keeps each library for its lifetime.
final class PluginLibrary: @unchecked Sendable {
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the library with `RTLD_NOW | RTLD_LOCAL`.
    /// The corresponding C function is `dlopen`.
    init(path: String) throws(PluginLoadError) {
        self.path = path
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw PluginLoadError(code: .open, plugin: path, reason: "cannot load library: \(Self.lastError())")
        }
        handle = h
    }

    /// The address of `symbol`, or nil. The corresponding C function is `dlsym`.
    func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(handle, name)
    }

    static func lastError() -> String {
        guard let e = dlerror() else { return "unknown dlopen error" }
        return String(cString: e)
    }
}

/// Copies a C table of `size` bytes (as its producer declared it) into a zeroed local of type T,
/// so fields a smaller (older) producer did not have read as zero and a larger one is truncated.
func copyTable<T>(_ pointer: UnsafeRawPointer, declaredSize: UInt32, as type: T.Type) -> T {
    let local = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
    defer { local.deallocate() }
    local.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
    local.copyMemory(from: pointer, byteCount: min(Int(declaredSize), MemoryLayout<T>.size))
    return local.load(as: T.self)
}
