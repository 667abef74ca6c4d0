#if canImport(Glibc)
import Glibc
#endif

/// A recording file that could not be created, written, read or repaired, with the file it concerns.
public struct RecordingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for callers that react differently (a taken name is not a full disk).
    public struct Code: Sendable, Equatable, CustomStringConvertible {
        private enum Kind: String { case fileExists, io, closed, invalidArgument, notMatroska, unsupportedLayout, corrupt }
        private let kind: Kind
        /// The path already exists; recordings are never overwritten.
        public static let fileExists = Code(kind: .fileExists)
        /// A system call on the file failed (disk full, permissions, I/O error).
        public static let io = Code(kind: .io)
        /// The file was already finished or closed.
        public static let closed = Code(kind: .closed)
        /// The caller passed something the format cannot hold (an unknown track, a timestamp going back).
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// Repair: the file does not start with a Matroska or WebM EBML header.
        public static let notMatroska = Code(kind: .notMatroska)
        /// Repair: Matroska, but without the reserved places a live recording by `MatroskaWriter` has.
        public static let unsupportedLayout = Code(kind: .unsupportedLayout)
        /// Repair: bytes in the middle of the file are not Matroska; cutting there could lose good data.
        public static let corrupt = Code(kind: .corrupt)
        public var description: String { kind.rawValue }
    }

    public var code: Code
    public var message: String
    public var path: String

    public init(_ code: Code, _ message: String, path: String) {
        self.code = code
        self.message = message
        self.path = path
    }

    /// `what` failed on `path` with the current `errno`.
    static func system(_ what: String, path: String) -> RecordingError {
        let number = errno
        let code: Code = number == EEXIST ? .fileExists : .io
        return RecordingError(code, "\(what): \(String(cString: strerror(number)))", path: path)
    }

    public var description: String { "\(path): \(message)" }
}

/// A recording file on disk, written by appending. Appended bytes collect in a user-space buffer and
/// reach the kernel on `flush()` (or when the buffer fills), and the disk on `sync()`. `patch` rewrites
/// bytes already written, for the fields a clean stop fills in.
///
/// A new file is created exclusively: an existing file is never opened for writing from the start, so
/// a recording can never replace another one.
public final class FileSink {
    public let path: String
    private var descriptor: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes the kernel has: the file offset where the buffer's first byte goes.
    private var handedOver: Int
    private var directorySynced: Bool

    /// Creates `path`, which must not exist. The corresponding C call is `open(O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644)`.
    public init(creating path: String, bufferCapacity: Int = 64 * 1024) throws(RecordingError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST { throw RecordingError(.fileExists, "already exists; a recording never overwrites a file", path: path) }
            throw RecordingError.system("create", path: path)
        }
        self.path = path
        descriptor = fd
        buffer = .allocate(byteCount: max(bufferCapacity, 4096), alignment: 16)
        handedOver = 0
        directorySynced = false
    }

    /// Opens an existing file to read and change it in place, for repair; appending continues at its end.
    /// The corresponding C call is `open(O_RDWR | O_CLOEXEC)`.
    public init(repairing path: String, bufferCapacity: Int = 64 * 1024) throws(RecordingError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw RecordingError.system("open for repair", path: path) }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            let error = RecordingError.system("seek to end", path: path)
            Glibc.close(fd)
            throw error
        }
        self.path = path
        descriptor = fd
        buffer = .allocate(byteCount: max(bufferCapacity, 4096), alignment: 16)
        handedOver = Int(end)
        directorySynced = true
    }

    deinit {
        // Best effort for a sink dropped without close(): what was appended should not vanish.
        if descriptor >= 0 {
            try? flush()
            Glibc.close(descriptor)
        }
        buffer.deallocate()
    }

    /// Bytes in the file once everything appended so far is flushed.
    public var offset: Int { handedOver + buffered }

    /// Whether `close()` has run.
    public var isClosed: Bool { descriptor < 0 }

    /// Appends `bytes`; they reach the kernel when the buffer fills or on `flush()`.
    public func append(_ bytes: UnsafeRawBufferPointer) throws(RecordingError) {
        try checkOpen()
        if bytes.count > buffer.count - buffered { try flush() }
        if bytes.count > buffer.count {
            // Larger than the whole buffer: copying it through would only add work.
            var done = 0
            defer { handedOver += done }
            try writeAll(bytes, at: nil, done: &done)
            return
        }
        if let base = bytes.baseAddress {
            (buffer.baseAddress! + buffered).copyMemory(from: base, byteCount: bytes.count)
        }
        buffered += bytes.count
    }

    public func append(_ bytes: [UInt8]) throws(RecordingError) {
        // withUnsafeBytes only rethrows untyped errors; a Result keeps the type.
        try bytes.withUnsafeBytes { raw in Result { () throws(RecordingError) in try append(raw) } }.get()
    }

    /// Hands every buffered byte to the kernel. The corresponding C call is `write(2)`, repeated over
    /// short writes and `EINTR`.
    public func flush() throws(RecordingError) {
        try checkOpen()
        guard buffered > 0 else { return }
        var done = 0
        defer {
            // What the kernel took before an error stays counted, so a retry does not write it twice.
            handedOver += done
            buffered -= done
            if buffered > 0, done > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + done, byteCount: buffered) }
        }
        try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]), at: nil, done: &done)
    }

    /// Flushes, then asks the kernel to put the file on disk. The corresponding C call is `fsync(2)`.
    /// The first sync also syncs the directory, so that a new file's name survives a power cut too.
    public func sync() throws(RecordingError) {
        try flush()
        guard fsync(descriptor) == 0 else { throw RecordingError.system("fsync", path: path) }
        if !directorySynced {
            syncDirectory()
            directorySynced = true
        }
    }

    /// Overwrites bytes already appended, at `offset` from the start of the file. Buffered bytes are
    /// flushed first, so the patch always lands on top of them. The corresponding C call is `pwrite(2)`.
    public func patch(at offset: Int, bytes: [UInt8]) throws(RecordingError) {
        guard offset >= 0, offset + bytes.count <= self.offset else {
            throw RecordingError(.invalidArgument, "patch of \(bytes.count) bytes at \(offset) is outside the \(self.offset) bytes written", path: path)
        }
        try flush()
        var done = 0
        try bytes.withUnsafeBytes { raw in Result { () throws(RecordingError) in try writeAll(raw, at: offset, done: &done) } }.get()
    }

    /// Up to `count` bytes at `offset`; fewer at the end of the file. Buffered bytes are flushed first.
    /// The corresponding C call is `pread(2)`.
    public func read(at offset: Int, count: Int) throws(RecordingError) -> [UInt8] {
        try flush()
        guard offset >= 0, count > 0, offset < handedOver else { return [] }
        let wanted = min(count, handedOver - offset)
        var bytes = [UInt8](repeating: 0, count: wanted)
        var done = 0
        while done < wanted {
            let n = bytes.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, wanted - done, off_t(offset + done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw RecordingError.system("read", path: path)
            }
            if n == 0 { break }
            done += n
        }
        if done < wanted { bytes.removeLast(wanted - done) }
        return bytes
    }

    /// Cuts the file to `length` bytes, dropping anything after it. The corresponding C call is `ftruncate(2)`.
    public func truncate(to length: Int) throws(RecordingError) {
        try flush()
        guard length >= 0, length <= handedOver else {
            throw RecordingError(.invalidArgument, "cannot truncate \(handedOver) bytes to \(length)", path: path)
        }
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw RecordingError.system("truncate", path: path) }
        // The file position stays where it was; appending from there would leave a hole of zeros.
        guard lseek(descriptor, off_t(length), SEEK_SET) == off_t(length) else { throw RecordingError.system("seek", path: path) }
        handedOver = length
    }

    /// Flushes and closes the file. Closing twice does nothing.
    public func close() throws(RecordingError) {
        guard descriptor >= 0 else { return }
        defer {
            Glibc.close(descriptor)
            descriptor = -1
        }
        try flush()
    }

    private func checkOpen() throws(RecordingError) {
        guard descriptor >= 0 else { throw RecordingError(.closed, "the file is already closed", path: path) }
    }

    /// Writes all of `bytes` at the file position (`offset` nil) or at `offset`; `done` counts the
    /// bytes written, also when it throws.
    private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int?, done: inout Int) throws(RecordingError) {
        guard let base = bytes.baseAddress else { return }
        while done < bytes.count {
            let n = if let offset {
                pwrite(descriptor, base + done, bytes.count - done, off_t(offset + done))
            } else {
                write(descriptor, base + done, bytes.count - done)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw RecordingError.system("write", path: path)
            }
            guard n > 0 else { throw RecordingError(.io, "write made no progress", path: path) }
            done += n
        }
    }

    private func syncDirectory() {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        Glibc.close(fd)
    }
}
