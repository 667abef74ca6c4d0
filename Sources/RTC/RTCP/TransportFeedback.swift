/// Transport-wide congestion control feedback (TWCC): which packets of a transport arrived, and when.
///
/// RTPFB FMT 15, draft-holmer-rmcat-transport-wide-cc-extensions-01. It covers a range of
/// transport-wide sequence numbers and feeds the sender's bandwidth estimator.
public struct TransportFeedback: Sendable, Equatable {
    static let format: UInt8 = 15
    static let fixedFCILength = 8

    /// One tick of a receive delta.
    public static let deltaTickMicroseconds: Int64 = 250
    /// One unit of the reference time.
    public static let referenceTimeUnitMicroseconds: Int64 = 64_000
    /// The longest run a run-length chunk can hold.
    public static let maximumRunLength = 0x1FFF

    /// What the receiver says about one packet, and so what size of receive delta it carries.
    public enum PacketStatus: UInt8, Sendable {
        case notReceived = 0
        /// Received, with a one-byte delta (0 to 63.75 ms).
        case receivedSmallDelta = 1
        /// Received, with a two-byte signed delta (negative or large).
        case receivedLargeDelta = 2
    }

    /// A packet status chunk.
    public enum Chunk: Sendable, Equatable {
        /// `count` consecutive packets with the same status.
        case runLength(PacketStatus, count: Int)
        /// Up to 14 statuses that are `notReceived` or `receivedSmallDelta`, one bit each.
        case oneBitVector([PacketStatus])
        /// Up to 7 statuses, two bits each.
        case twoBitVector([PacketStatus])

        /// How many statuses the chunk covers on the wire.
        var capacity: Int {
            switch self {
            case .runLength(_, let count): count
            case .oneBitVector: 14
            case .twoBitVector: 7
            }
        }
    }

    /// A packet and its arrival time in microseconds, or `nil` if it was lost.
    public struct PacketResult: Sendable, Equatable {
        public var sequenceNumber: UInt16
        public var arrivalTime: Int64?

        public init(sequenceNumber: UInt16, arrivalTime: Int64?) {
            self.sequenceNumber = sequenceNumber
            self.arrivalTime = arrivalTime
        }
    }

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    /// The transport-wide sequence number of the first packet described.
    public var baseSequenceNumber: UInt16
    /// How many packets, from `baseSequenceNumber` on, the chunks describe.
    public var packetStatusCount: UInt16
    /// In units of 64 ms, 24-bit signed on the wire; the first receive delta is relative to it.
    public var referenceTime: Int32
    /// Counts feedback packets, so the sender can tell when one was lost.
    public var feedbackPacketCount: UInt8
    public var chunks: [Chunk]
    /// One per received packet, in order, in ticks of 250 µs; each relative to the previous
    /// received packet (the first to `referenceTime`).
    public var receiveDeltas: [Int16]

    public init(
        senderSSRC: UInt32, mediaSSRC: UInt32, baseSequenceNumber: UInt16, packetStatusCount: UInt16,
        referenceTime: Int32, feedbackPacketCount: UInt8, chunks: [Chunk], receiveDeltas: [Int16]
    ) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.baseSequenceNumber = baseSequenceNumber
        self.packetStatusCount = packetStatusCount
        self.referenceTime = referenceTime
        self.feedbackPacketCount = feedbackPacketCount
        self.chunks = chunks
        self.receiveDeltas = receiveDeltas
    }

    /// Builds the feedback for packets in ascending sequence order (modulo 2^16; numbers left out
    /// count as lost). Arrival times are rounded to 250 µs ticks without drift; the reference time
    /// is the first arrival rounded down to 64 ms. Throws if the range exceeds 65535 packets or a
    /// delta does not fit in 16 bits (over about 8 s): split the feedback then.
    public init(senderSSRC: UInt32, mediaSSRC: UInt32, feedbackPacketCount: UInt8, packets: [PacketResult]) throws(RTCPError) {
        guard let first = packets.first else { throw RTCPError(.notEncodable, "transport feedback for no packets") }
        let firstArrival = packets.lazy.compactMap(\.arrivalTime).first ?? 0
        let referenceUnits = Self.floorDivide(firstArrival, Self.referenceTimeUnitMicroseconds)
        var statuses: [PacketStatus] = []
        var deltas: [Int16] = []
        var previousTime = referenceUnits * Self.referenceTimeUnitMicroseconds
        var previousSequence = first.sequenceNumber
        for (index, packet) in packets.enumerated() {
            if index > 0 {
                let step = packet.sequenceNumber &- previousSequence
                guard step != 0, step < 0x8000 else {
                    throw RTCPError(.notEncodable, "sequence number \(packet.sequenceNumber) does not follow \(previousSequence)")
                }
                statuses.append(contentsOf: repeatElement(.notReceived, count: Int(step) - 1))
                previousSequence = packet.sequenceNumber
            }
            guard let arrival = packet.arrivalTime else {
                statuses.append(.notReceived)
                continue
            }
            let (elapsed, overflow) = arrival.subtractingReportingOverflow(previousTime)
            var ticks = Self.floorDivide(elapsed, Self.deltaTickMicroseconds)
            if elapsed - ticks * Self.deltaTickMicroseconds >= Self.deltaTickMicroseconds / 2 { ticks += 1 }
            guard !overflow, let delta = Int16(exactly: ticks) else {
                throw RTCPError(.notEncodable, "the receive delta at sequence number \(packet.sequenceNumber) needs more than 16 bits")
            }
            previousTime += ticks * Self.deltaTickMicroseconds
            statuses.append(0...255 ~= delta ? .receivedSmallDelta : .receivedLargeDelta)
            deltas.append(delta)
        }
        guard statuses.count <= Int(UInt16.max) else {
            throw RTCPError(.notEncodable, "\(statuses.count) packets in one transport feedback; at most 65535")
        }
        self.init(
            senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: first.sequenceNumber,
            packetStatusCount: UInt16(statuses.count), referenceTime: Self.signExtend24(UInt32(truncatingIfNeeded: referenceUnits)),
            feedbackPacketCount: feedbackPacketCount, chunks: Self.chunks(for: statuses), receiveDeltas: deltas)
    }

    /// The statuses of the `packetStatusCount` packets, expanded from the chunks.
    public var packetStatuses: [PacketStatus] {
        var statuses: [PacketStatus] = []
        let count = Int(packetStatusCount)
        for chunk in chunks where statuses.count < count {
            switch chunk {
            case .runLength(let status, let run):
                statuses.append(contentsOf: repeatElement(status, count: min(max(run, 0), count - statuses.count)))
            case .oneBitVector(let symbols), .twoBitVector(let symbols):
                statuses.append(contentsOf: symbols.prefix(count - statuses.count))
            }
        }
        return statuses
    }

    /// Every packet described, with its arrival time in microseconds in the sender's reference
    /// time base (`referenceTime` · 64 ms plus the deltas), or `nil` if it was not received.
    public var packetResults: [PacketResult] {
        var results: [PacketResult] = []
        var time = Int64(referenceTime) * Self.referenceTimeUnitMicroseconds
        var deltas = receiveDeltas.makeIterator()
        for (index, status) in packetStatuses.enumerated() {
            let sequence = baseSequenceNumber &+ UInt16(truncatingIfNeeded: index)
            guard status != .notReceived, let delta = deltas.next() else {
                results.append(PacketResult(sequenceNumber: sequence, arrivalTime: nil))
                continue
            }
            time += Int64(delta) * Self.deltaTickMicroseconds
            results.append(PacketResult(sequenceNumber: sequence, arrivalTime: time))
        }
        return results
    }

    /// A compact chunking: runs of 14 or more (or a run to the end) as run-length chunks, the rest
    /// as one-bit vectors, or two-bit vectors where a large delta appears.
    static func chunks(for statuses: [PacketStatus]) -> [Chunk] {
        var chunks: [Chunk] = []
        var i = 0
        while i < statuses.count {
            var run = 1
            while i + run < statuses.count, run < maximumRunLength, statuses[i + run] == statuses[i] { run += 1 }
            let oneBitWindow = statuses[i..<min(i + 14, statuses.count)]
            let needsTwoBits = oneBitWindow.contains(.receivedLargeDelta)
            if run >= 14 || i + run == statuses.count || (needsTwoBits && run >= 7) {
                chunks.append(.runLength(statuses[i], count: run))
                i += run
            } else if !needsTwoBits {
                // Symbols past the last packet are written as "not received", so they are kept so.
                chunks.append(.oneBitVector(Array(oneBitWindow) + repeatElement(.notReceived, count: 14 - oneBitWindow.count)))
                i += oneBitWindow.count
            } else {
                let window = statuses[i..<min(i + 7, statuses.count)]
                chunks.append(.twoBitVector(Array(window) + repeatElement(.notReceived, count: 7 - window.count)))
                i += window.count
            }
        }
        return chunks
    }

    init(body r: RTCPReader) throws(RTCPError) {
        (senderSSRC, mediaSSRC) = try FeedbackHeader.read(r, "a transport feedback")
        var o = FeedbackHeader.length
        try r.require(o + Self.fixedFCILength, "a transport feedback")
        baseSequenceNumber = r.u16(o)
        packetStatusCount = r.u16(o + 2)
        referenceTime = Self.signExtend24(r.u24(o + 4))
        feedbackPacketCount = r.u8(o + 7)
        o += Self.fixedFCILength

        let count = Int(packetStatusCount)
        chunks = []
        var statuses: [PacketStatus] = []
        statuses.reserveCapacity(count)
        while statuses.count < count {
            guard o + 2 <= r.count else {
                throw RTCPError(.truncated, "chunks describe \(statuses.count) of \(count) packets before the end")
            }
            let word = r.u16(o)
            o += 2
            let chunk: Chunk
            if word & 0x8000 == 0 {
                let symbol = UInt8((word >> 13) & 3)
                let run = Int(word & 0x1FFF)
                guard let status = PacketStatus(rawValue: symbol) else {
                    throw RTCPError(.malformed, "run-length chunk with the reserved status")
                }
                chunk = .runLength(status, count: run)
                statuses.append(contentsOf: repeatElement(status, count: min(run, count - statuses.count)))
            } else if word & 0x4000 == 0 {
                let symbols = (0..<14).map { bit -> PacketStatus in word & (0x2000 >> bit) != 0 ? .receivedSmallDelta : .notReceived }
                chunk = .oneBitVector(symbols)
                statuses.append(contentsOf: symbols.prefix(count - statuses.count))
            } else {
                var symbols: [PacketStatus] = []
                for position in 0..<7 {
                    let symbol = UInt8((word >> (12 - 2 * position)) & 3)
                    if let status = PacketStatus(rawValue: symbol) {
                        symbols.append(status)
                    } else if statuses.count + position < count {
                        throw RTCPError(.malformed, "two-bit vector chunk with the reserved status")
                    } else {
                        // Past the last packet the symbols mean nothing.
                        symbols.append(.notReceived)
                    }
                }
                chunk = .twoBitVector(symbols)
                statuses.append(contentsOf: symbols.prefix(count - statuses.count))
            }
            chunks.append(chunk)
        }

        receiveDeltas = []
        for status in statuses {
            switch status {
            case .notReceived:
                continue
            case .receivedSmallDelta:
                guard o + 1 <= r.count else { throw RTCPError(.truncated, "receive deltas run past the end") }
                receiveDeltas.append(Int16(r.u8(o)))
                o += 1
            case .receivedLargeDelta:
                guard o + 2 <= r.count else { throw RTCPError(.truncated, "receive deltas run past the end") }
                receiveDeltas.append(Int16(bitPattern: r.u16(o)))
                o += 2
            }
        }
        // Older senders pad with zeros instead of RTCP padding.
        guard r.count - o <= 3 else { throw RTCPError(.malformed, "\(r.count - o) bytes after the receive deltas") }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let count = Int(packetStatusCount)
        var covered = 0
        var received: [PacketStatus] = []
        for chunk in chunks {
            guard covered < count else { throw RTCPError(.notEncodable, "a chunk after all \(count) packets are described") }
            let symbols: [PacketStatus]
            switch chunk {
            case .runLength(let status, let run):
                guard 0...Self.maximumRunLength ~= run else { throw RTCPError(.notEncodable, "run length \(run)") }
                symbols = Array(repeatElement(status, count: min(run, count - covered)))
            case .oneBitVector(let s):
                guard s.count <= 14, !s.contains(.receivedLargeDelta) else {
                    throw RTCPError(.notEncodable, "a one-bit vector of \(s.count) symbols or with a large delta")
                }
                symbols = Array(s.prefix(count - covered))
            case .twoBitVector(let s):
                guard s.count <= 7 else { throw RTCPError(.notEncodable, "a two-bit vector of \(s.count) symbols") }
                symbols = Array(s.prefix(count - covered))
            }
            covered += chunk.capacity
            received.append(contentsOf: symbols.filter { $0 != .notReceived })
        }
        guard covered >= count else { throw RTCPError(.notEncodable, "chunks describe \(covered) of \(count) packets") }
        guard received.count == receiveDeltas.count else {
            throw RTCPError(.notEncodable, "\(received.count) received packets but \(receiveDeltas.count) receive deltas")
        }
        for (status, delta) in zip(received, receiveDeltas) where status == .receivedSmallDelta && !(0...255 ~= delta) {
            throw RTCPError(.notEncodable, "receive delta \(delta) marked small")
        }

        let start = FeedbackHeader.begin(format: Self.format, type: .transportLayerFeedback, sender: senderSSRC, media: mediaSSRC, into: &out)
        out.appendBigEndian(baseSequenceNumber)
        out.appendBigEndian(packetStatusCount)
        RTCPWriter.append24(UInt32(bitPattern: referenceTime) & 0xFF_FFFF, to: &out)
        out.append(feedbackPacketCount)
        for chunk in chunks {
            switch chunk {
            case .runLength(let status, let run):
                out.appendBigEndian(UInt16(status.rawValue) << 13 | UInt16(run))
            case .oneBitVector(let symbols):
                var word: UInt16 = 0x8000
                for (bit, s) in symbols.enumerated() where s == .receivedSmallDelta { word |= 0x2000 >> bit }
                out.appendBigEndian(word)
            case .twoBitVector(let symbols):
                var word: UInt16 = 0xC000
                for (position, s) in symbols.enumerated() { word |= UInt16(s.rawValue) << (12 - 2 * position) }
                out.appendBigEndian(word)
            }
        }
        for (status, delta) in zip(received, receiveDeltas) {
            if status == .receivedSmallDelta {
                out.append(UInt8(delta))
            } else {
                out.appendBigEndian(UInt16(bitPattern: delta))
            }
        }
        // RTCP padding with the padding bit, as libwebrtc writes it.
        try RTCPWriter.endPacket(start: start, into: &out)
    }

    static func signExtend24(_ v: UInt32) -> Int32 { Int32(bitPattern: v << 8) >> 8 }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
