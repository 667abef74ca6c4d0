import Foundation
import RecorderCore
import Testing

@Suite struct FileSinkTests {
    private func sizeOnDisk(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
    }

    @Test func anExistingFileIsNeverOverwritten() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("earlier-meeting.webm")
        try writeFile(path, Array("an earlier recording".utf8))

        let error = try #require(throws: RecordingError.self) { try FileSink(creating: path) }
        #expect(error.code == .fileExists)
        #expect(error.path == path)
        #expect(error.description.contains(path))
        #expect(try fileBytes(path) == Array("an earlier recording".utf8))

        // The writers go through the same door.
        #expect(throws: RecordingError.self) { try MatroskaWriter(path: path, docType: "webm", tracks: [.opus(number: 1, channels: 2)]) }
        #expect(throws: RecordingError.self) { try OggOpusWriter(path: path, channels: 2, serial: 1) }
        #expect(try fileBytes(path) == Array("an earlier recording".utf8))
    }

    @Test func bytesWaitInTheBufferUntilFlushed() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("buffered")
        let sink = try FileSink(creating: path, bufferCapacity: 64 * 1024)
        try sink.append([UInt8](repeating: 7, count: 1000))
        #expect(sink.offset == 1000)
        #expect(try sizeOnDisk(path) == 0)
        try sink.flush()
        #expect(try sizeOnDisk(path) == 1000)

        // Filling the buffer hands it over without a flush; a chunk bigger than the buffer goes straight through.
        try sink.append([UInt8](repeating: 8, count: 64 * 1024))
        #expect(try sizeOnDisk(path) == 1000)
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        try sink.append(big)
        #expect(try sizeOnDisk(path) == 1000 + 64 * 1024 + 200_000)
        try sink.append([1, 2, 3])
        try sink.sync()
        #expect(sink.offset == 1000 + 64 * 1024 + 200_003)
        try sink.close()
        let bytes = try fileBytes(path)
        #expect(bytes.count == sink.offset)
        #expect(Array(bytes[(1000 + 64 * 1024)...]) == big + [1, 2, 3])
    }

    @Test func patchesOverwriteWrittenAndBufferedBytesButNothingBeyond() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("patched")
        let sink = try FileSink(creating: path)
        try sink.append(Array("0123456789".utf8))
        try sink.flush()
        try sink.append(Array("abcdef".utf8))
        try sink.patch(at: 8, bytes: Array("XYZ".utf8))  // across the flushed and the buffered part
        #expect(throws: RecordingError.self) { try sink.patch(at: 15, bytes: [0, 0]) }
        try sink.close()
        #expect(String(decoding: try fileBytes(path), as: UTF8.self) == "01234567XYZbcdef")
        #expect(throws: RecordingError.self) { try sink.append([1]) }
    }

    @Test func aFileOpenedForRepairIsReadTruncatedAndAppendedTo() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("repair")
        try writeFile(path, Array("complete|half-writ".utf8))
        let sink = try FileSink(repairing: path)
        #expect(sink.offset == 18)
        #expect(try sink.read(at: 9, count: 100) == Array("half-writ".utf8))
        #expect(try sink.read(at: 18, count: 4) == [])
        try sink.truncate(to: 9)
        try sink.append(Array("end".utf8))
        try sink.close()
        #expect(String(decoding: try fileBytes(path), as: UTF8.self) == "complete|end")

        let missing = try #require(throws: RecordingError.self) { try FileSink(repairing: scratch.path("absent")) }
        #expect(missing.code == .io)
    }
}
