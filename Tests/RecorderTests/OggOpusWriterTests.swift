import Foundation
import RecorderCore
import Testing

@Suite struct OggOpusWriterTests {
    @Test func theCRCIsOggsNotZlibs() throws {
        // CRC-32 with polynomial 0x04C11DB7, initial value 0, no reflection, no final XOR, over "123456789".
        #expect(OggCRC.checksum(Array("123456789".utf8)) == 0x89A1_897F)
        #expect(OggCRC.checksum([]) == 0)
        // And it agrees with every page ffmpeg wrote.
        let fixtures = try MediaFixtures.shared.get()
        let pages = OggPageRead.pages(fixtures.ogg)
        #expect(pages.count >= 4)
        for page in pages {
            var bytes = Array(fixtures.ogg[page.offset..<(page.offset + page.length)])
            bytes.replaceSubrange(22..<26, with: [0, 0, 0, 0])
            #expect(OggCRC.checksum(bytes) == page.crc)
        }
    }

    @Test func opusHeadIsTheNineteenBytesOfRFC7845() {
        #expect(OpusHead.bytes(channels: 2, preSkip: 312, inputSampleRate: 48_000) == [
            0x4F, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64, 1, 2, 0x38, 0x01, 0x80, 0xBB, 0x00, 0x00, 0, 0, 0,
        ])
    }

    @Test func opusPacketsMakeAFileThatPlaysForExactlyTheirLength() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("voice.opus")
        let writer = try OggOpusWriter(path: path, channels: fixtures.channels, preSkip: fixtures.preSkip, serial: 0xA771_0001, tags: ["TITLE=standup"])
        var samples = 0
        for packet in fixtures.audioPackets {
            try writer.write(packet: packet, samples: opusSamples(packet))
            samples += opusSamples(packet)
        }
        #expect(writer.granule == Int64(samples))
        try writer.finish()

        let decode = try MediaTool.decode(path)
        #expect(decode.status == 0 && decode.stderr == "", "\(decode.stderr)")
        #expect(try MediaTool.decodedAudioSamples(path) == samples - Int(fixtures.preSkip))
        #expect(try MediaTool.packetHashes(path, stream: "a:0") == fixtures.audioHashes)
        let info = try MediaTool.run("opusinfo", [path])
        #expect(info.status == 0)
        #expect(!(info.output + info.stderr).contains("WARNING"), "\(info.output)\(info.stderr)")
        #expect(info.output.contains("Pre-skip: \(fixtures.preSkip)"))
        let probe = try MediaTool.run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name,channels:format=format_name", "-of", "csv=p=0", path])
        #expect(probe.output.contains("opus,\(fixtures.channels)") && probe.output.contains("ogg"))

        let bytes = try fileBytes(path)
        let pages = OggPageRead.pages(bytes)
        #expect(pages.map(\.length).reduce(0, +) == bytes.count)
        #expect(pages.allSatisfy { $0.crcMatches })
        #expect(pages.map(\.sequence) == (0..<UInt32(pages.count)).map { $0 })
        #expect(pages.allSatisfy { $0.serial == 0xA771_0001 })
        #expect(pages.map(\.beginsStream) == [true] + [Bool](repeating: false, count: pages.count - 1))
        #expect(pages.map(\.endsStream) == [Bool](repeating: false, count: pages.count - 1) + [true])
        // OpusHead alone on the first page, OpusTags alone on the second, both at granule 0.
        #expect(pages[0].granule == 0 && pages[0].body == OpusHead.bytes(channels: fixtures.channels, preSkip: fixtures.preSkip))
        #expect(pages[1].granule == 0 && pages[1].body.starts(with: Array("OpusTags".utf8) + [6, 0, 0, 0] + Array("Atrium".utf8)))
        #expect(String(decoding: pages[1].body, as: UTF8.self).hasSuffix("TITLE=standup"))
        // Audio pages hold at most a second; the last granule is every sample written.
        let granules = pages.dropFirst(2).map(\.granule)
        #expect(zip([0] + granules, granules).allSatisfy { $1 - $0 > 0 && $1 - $0 <= 48_000 })
        #expect(granules.last == Int64(samples))
    }

    @Test func aCopyCutMidPageStillPlaysUpToTheLastWholePage() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("live.opus"), copy = scratch.path("crashed.opus")
        let writer = try OggOpusWriter(path: path, channels: fixtures.channels, preSkip: fixtures.preSkip, serial: 7)
        for (index, packet) in fixtures.audioPackets.enumerated() {
            try writer.write(packet: packet, samples: opusSamples(packet))
            if index % 10 == 9 { try writer.flush() }  // a page every 200 ms, as a recorder would
        }
        try writer.flush()
        let bytes = try fileBytes(path)
        try writer.finish()

        let pages = OggPageRead.pages(bytes)
        let middle = pages[pages.count / 2]
        let cut = middle.offset + middle.length / 2
        try writeFile(copy, bytes[..<cut])
        let lastWhole = pages.last { $0.offset + $0.length <= cut }!

        let decode = try MediaTool.decode(copy)
        #expect(decode.status == 0)
        #expect(try MediaTool.decodedAudioSamples(copy) == Int(lastWhole.granule) - Int(fixtures.preSkip))
        // opusinfo reads it all; its one complaint (and its exit status 1) is the missing end-of-stream page.
        let info = try MediaTool.run("opusinfo", [copy])
        let warnings = (info.output + info.stderr).split(separator: "\n").filter { $0.contains("WARNING") }
        #expect(warnings.count == 1 && warnings.allSatisfy { $0.contains("EOS not set") }, "\(warnings)")
        #expect(info.output.contains("Playback length"))
    }

    @Test func lacingFollowsRFC3533AtEveryEdge() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("lacing.opus")
        let writer = try OggOpusWriter(path: path, channels: 1, preSkip: 0, serial: 1)
        let empty = try #require(throws: RecordingError.self) { try writer.write(packet: [], samples: 960) }
        #expect(empty.code == .invalidArgument)
        for length in [1, 254, 255, 510] {
            try writer.write(packet: [UInt8](repeating: UInt8(length % 256), count: length), samples: 960)
            try writer.flushPage()
        }
        // Bigger than a page can hold (255 × 255 bytes): it continues on the next page.
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try writer.write(packet: big, samples: 960)
        try writer.write(packet: [0xF8], samples: 960)
        try writer.finish()

        let pages = OggPageRead.pages(try fileBytes(path))
        #expect(pages.allSatisfy { $0.crcMatches })
        let audio = Array(pages.dropFirst(2))
        #expect(audio.count == 6)
        #expect(audio[0].lacing == [1])
        #expect(audio[1].lacing == [254])
        #expect(audio[2].lacing == [255, 0])  // a multiple of 255 ends with a 0
        #expect(audio[3].lacing == [255, 255, 0])
        #expect(audio.prefix(4).map(\.granule) == [960, 1920, 2880, 3840])
        // 70 000 bytes = 274 × 255 + 130: a full page of 255s, no packet ending on it, then the rest.
        #expect(audio[4].lacing == [UInt8](repeating: 255, count: 255))
        #expect(audio[4].granule == -1 && !audio[4].continued)
        #expect(audio[5].continued)
        #expect(audio[5].lacing == [UInt8](repeating: 255, count: 19) + [130, 1])
        #expect(audio[5].granule == 5760 && audio[5].endsStream)
        let packets = OggPageRead.packets(pages).map(\.data)
        #expect(packets.count == 8)
        #expect(packets[6] == big)
        #expect(packets[7] == [0xF8])
    }

    @Test func finishMarksTheLastPageEvenWhenItWasAlreadyWritten() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("flushed.opus")
        let writer = try OggOpusWriter(path: path, channels: 2, serial: 3)
        for _ in 0..<5 { try writer.write(packet: [0xFC, 0xFF, 0xFE], samples: 960) }
        try writer.flush()
        try writer.finish()
        let pages = OggPageRead.pages(try fileBytes(path))
        #expect(pages.count == 3)
        #expect(pages.allSatisfy { $0.crcMatches })
        #expect(pages.last?.endsStream == true && pages.last?.granule == 4800)
        let info = try MediaTool.run("opusinfo", [path])
        #expect(!(info.output + info.stderr).contains("WARNING"), "\(info.output)\(info.stderr)")
    }
}
