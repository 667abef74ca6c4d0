import Foundation
import RecorderCore

/// One file for the Matroska repair reader, as a crash might leave it: written to a scratch file
/// (in /dev/shm when there is one, so that fuzzing is not disk bound) and repaired. A repaired
/// file must read as finished when repaired again.
public func fuzzMatroskaRepair(_ data: UnsafeRawBufferPointer) {
    let path = MatroskaScratch.path
    guard FileManager.default.createFile(atPath: path, contents: Data(data)) else { fuzzFailure("cannot write \(path)") }
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard let report = try? MatroskaRepair.repair(path: path), !report.alreadyFinished else { return }
    guard let again = try? MatroskaRepair.repair(path: path) else { fuzzFailure("a repaired file no longer reads") }
    guard again.alreadyFinished else { fuzzFailure("a repaired file is not finished") }
}

/// The one scratch file of this process.
private enum MatroskaScratch {
    static let path: String = {
        let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return "\(folder)/atrium-fuzz-matroska-\(ProcessInfo.processInfo.processIdentifier).mkv"
    }()
}
