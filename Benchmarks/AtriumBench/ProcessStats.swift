#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about a process: CPU time (all threads) and resident memory.
enum ProcessStats {
    /// CPU nanoseconds of each live thread of `pid`, by thread id: the first field of
    /// /proc/<pid>/task/*/schedstat. Nil when the process is gone or schedstat is missing.
    static func threadCPUNanoseconds(_ pid: Int32) -> [Int: UInt64]? {
        guard let dir = opendir("/proc/\(pid)/task") else { return nil }
        defer { closedir(dir) }
        var threads: [Int: UInt64] = [:]
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tid = Int(name), let text = read("/proc/\(pid)/task/\(tid)/schedstat"),
                  let first = text.split(separator: " ").first, let ns = UInt64(first) else { continue }
            threads[tid] = ns
        }
        return threads.isEmpty ? nil : threads
    }

    /// The CPU seconds `pid` spent between two `threadCPUNanoseconds` readings, thread by thread.
    /// A sum over the live threads would go down when a thread exits (its whole past leaves the
    /// sum, as idle dispatch workers do); here an exiting thread loses only its share of the
    /// window, and a new one counts from zero.
    static func cpuSeconds(from before: [Int: UInt64], to after: [Int: UInt64]) -> Double {
        let ns = after.reduce(UInt64(0)) { total, thread in total + (thread.value &- min(thread.value, before[thread.key] ?? 0)) }
        return Double(ns) / 1e9
    }

    /// VmRSS of `pid` in kB, from /proc/<pid>/status.
    static func residentKilobytes(_ pid: Int32) -> Int? {
        guard let text = read("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// This process's CPU time (user + system, every thread), in seconds.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Progress on the terminal (stderr): one line rewritten in place on a terminal, plain lines otherwise.
struct Progress {
    let label: String
    private let tty = isatty(2) != 0

    init(label: String) { self.label = label }

    func update(_ text: String) {
        if tty { writeError("\r\u{1B}[2K[\(label)] \(text)") }
    }

    func done(_ text: String) {
        writeError((tty ? "\r\u{1B}[2K" : "") + "[\(label)] \(text)\n")
    }
}

/// Writes `text` to standard error.
func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
