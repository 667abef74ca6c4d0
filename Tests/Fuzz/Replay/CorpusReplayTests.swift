import Foundation
import Testing

/// The committed regression corpus (Tests/Fuzz/Corpus/<harness>), replayed through the same entry
/// functions the libFuzzer executables call: every input a fuzzer once found interesting, crashes
/// included once fixed, still runs clean.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Corpus")

    static var harnessNames: [String] { FuzzHarness.all.map(\.name) }

    @Test(arguments: harnessNames)
    func replaysTheCorpus(_ name: String) throws {
        let run = try #require(FuzzHarness.all.first { $0.name == name }).run
        let folder = Self.corpus.appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        #expect(!files.isEmpty, "no corpus for \(name) in \(folder.path)")
        for file in files {
            let bytes = try Data(contentsOf: file)
            bytes.withUnsafeBytes { run($0) }
        }
    }
}
