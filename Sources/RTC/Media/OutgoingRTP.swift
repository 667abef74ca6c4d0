/// The header extensions this side writes on one outgoing stream (ids from the negotiated `a=extmap`
/// lines, 0 when not negotiated), and the stream's mid as it goes into the mid extension.
public struct OutgoingExtensionIDs: Sendable, Equatable {
    public var mid: UInt8 = 0
    public var audioLevel: UInt8 = 0
    public var absSendTime: UInt8 = 0
    public var transportWideCC: UInt8 = 0
    public var videoOrientation: UInt8 = 0

    public init() {}

    /// The ids `media` negotiated for the URIs Atrium writes (ids above 14 need the two-byte form,
    /// which Atrium does not write: such an extension is left out).
    public init(_ media: MediaDescription) {
        func id(_ uri: String) -> UInt8 {
            guard let v = media.extensionID(uri: uri), v >= 1, v <= 14 else { return 0 }
            return UInt8(v)
        }
        mid = id(RTPHeaderExtensionURI.mid)
        audioLevel = id(RTPHeaderExtensionURI.audioLevel)
        absSendTime = id(RTPHeaderExtensionURI.absSendTime)
        transportWideCC = id(RTPHeaderExtensionURI.transportWideCC)
        videoOrientation = id(RTPHeaderExtensionURI.videoOrientation)
    }
}

extension OutgoingExtensionIDs {
    /// These ids less those the peer's answer did not keep (an offer names extensions the answer
    /// may drop; writing them anyway costs bytes, and for transport-wide sequence numbers a send
    /// history no feedback will ever read).
    public func kept(by answer: MediaDescription) -> OutgoingExtensionIDs {
        func keep(_ id: UInt8, _ uri: String) -> UInt8 { id != 0 && answer.extensionID(uri: uri) == UInt16(id) ? id : 0 }
        var ids = self
        ids.mid = keep(mid, RTPHeaderExtensionURI.mid)
        ids.audioLevel = keep(audioLevel, RTPHeaderExtensionURI.audioLevel)
        ids.absSendTime = keep(absSendTime, RTPHeaderExtensionURI.absSendTime)
        ids.transportWideCC = keep(transportWideCC, RTPHeaderExtensionURI.transportWideCC)
        ids.videoOrientation = keep(videoOrientation, RTPHeaderExtensionURI.videoOrientation)
        return ids
    }
}

/// Values for the extensions of one outgoing packet; nil leaves the element out.
public struct OutgoingExtensionValues {
    public var mid: UnsafeRawBufferPointer?
    public var audioLevel: (voice: Bool, level: UInt8)?
    /// 6.18 fixed-point seconds, 24 bits.
    public var absSendTime: UInt32?
    public var transportSequence: UInt16?
    /// CVO byte (rotation/90 in the low two bits).
    public var videoOrientation: UInt8?

    public init() {}
}

public enum OutgoingRTP {
    /// Writes `packet` into `out` as this side sends it: the same marker, payload type, sequence
    /// number, timestamp, CSRCs and payload, the SSRC `ssrc`, no padding, and a header extension
    /// block holding only the elements given in `values` whose ids are negotiated (what the sender
    /// put there is dropped: its ids belong to its own negotiation). Returns the length written, or
    /// nil when `out` is too small or the packet carries no payload (padding-only probes).
    ///
    /// With `repair`, the packet is written as its RFC 4588 retransmission instead: the repair
    /// stream's payload type and sequence number in the header, and the original sequence number
    /// before the payload.
    public static func write(_ packet: RTPPacketView, ssrc: UInt32, ids: OutgoingExtensionIDs,
                             values: OutgoingExtensionValues, into out: UnsafeMutableRawBufferPointer,
                             repair: (payloadType: UInt8, sequenceNumber: UInt16)? = nil) -> Int? {
        guard packet.payloadLength > 0 else { return nil }
        let csrcBytes = packet.csrcCount * 4
        let prefix = repair == nil ? 0 : 2
        let extensionBytes = Self.extensionBlockLength(extensionElementsLength(ids: ids, values: values))
        let total = 12 + csrcBytes + extensionBytes + prefix + packet.payloadLength
        guard out.count >= total else { return nil }
        out[0] = 0x80 | (extensionBytes > 0 ? 0x10 : 0) | UInt8(packet.csrcCount)
        out[1] = packet.buffer[1]
        out[2] = packet.buffer[2]
        out[3] = packet.buffer[3]
        if let repair {
            out[1] = (packet.buffer[1] & 0x80) | (repair.payloadType & 0x7F)
            out.storeBigEndian(repair.sequenceNumber, at: 2)
        }
        for i in 4..<8 { out[i] = packet.buffer[i] }
        out.storeBigEndian(ssrc, at: 8)
        var o = 12
        for i in 0..<csrcBytes { out[o + i] = packet.buffer[12 + i] }
        o += csrcBytes
        o = writeExtensions(ids: ids, values: values, length: extensionBytes, into: out, at: o)
        if repair != nil {
            out[o] = packet.buffer[2]
            out[o + 1] = packet.buffer[3]
            o += 2
        }
        UnsafeMutableRawBufferPointer(rebasing: out[o..<(o + packet.payloadLength)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: packet.buffer[packet.payloadOffset..<(packet.payloadOffset + packet.payloadLength)]))
        return total
    }

    /// A padding-only packet (a probe's filler): `padding` bytes (1...255) after the header, the
    /// last of them their count (RFC 3550 §5.1). Returns the length written, nil when `out` is too small.
    public static func writePadding(ssrc: UInt32, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, padding: Int,
                                    ids: OutgoingExtensionIDs, values: OutgoingExtensionValues,
                                    into out: UnsafeMutableRawBufferPointer) -> Int? {
        let padding = min(max(padding, 1), 255)
        let extensionBytes = Self.extensionBlockLength(extensionElementsLength(ids: ids, values: values))
        let total = 12 + extensionBytes + padding
        guard out.count >= total else { return nil }
        out[0] = 0x80 | 0x20 | (extensionBytes > 0 ? 0x10 : 0)
        out[1] = payloadType & 0x7F
        out.storeBigEndian(sequenceNumber, at: 2)
        out.storeBigEndian(timestamp, at: 4)
        out.storeBigEndian(ssrc, at: 8)
        var o = writeExtensions(ids: ids, values: values, length: extensionBytes, into: out, at: 12)
        while o < total - 1 {
            out[o] = 0
            o += 1
        }
        out[total - 1] = UInt8(padding)
        return total
    }

    /// The one-byte-header extension block for elements of `elements` bytes: 0 for none, else the
    /// 4-byte header and the elements padded to 32 bits.
    static func extensionBlockLength(_ elements: Int) -> Int {
        elements == 0 ? 0 : 4 + (elements + 3) / 4 * 4
    }

    /// The bytes of the elements `values` and `ids` give (each its header byte and data).
    static func extensionElementsLength(ids: OutgoingExtensionIDs, values: OutgoingExtensionValues) -> Int {
        var elements = 0
        if let mid = values.mid, ids.mid != 0, (1...16).contains(mid.count) { elements += 1 + mid.count }
        if values.audioLevel != nil, ids.audioLevel != 0 { elements += 2 }
        if values.absSendTime != nil, ids.absSendTime != 0 { elements += 4 }
        if values.transportSequence != nil, ids.transportWideCC != 0 { elements += 3 }
        if values.videoOrientation != nil, ids.videoOrientation != 0 { elements += 2 }
        return elements
    }

    /// Writes the extension block of `length` bytes (from `extensionBlockLength`) at `o`; returns
    /// the offset after it.
    private static func writeExtensions(ids: OutgoingExtensionIDs, values: OutgoingExtensionValues, length extensionBytes: Int,
                                        into out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var o = start
        if extensionBytes > 0 {
            out[o] = 0xBE
            out[o + 1] = 0xDE
            out.storeBigEndian(UInt16((extensionBytes - 4) / 4), at: o + 2)
            o += 4
            let end = o + extensionBytes - 4
            if let mid = values.mid, ids.mid != 0, (1...16).contains(mid.count) {
                out[o] = ids.mid << 4 | UInt8(mid.count - 1)
                for (k, byte) in mid.enumerated() { out[o + 1 + k] = byte }
                o += 1 + mid.count
            }
            if let level = values.audioLevel, ids.audioLevel != 0 {
                out[o] = ids.audioLevel << 4
                out[o + 1] = (level.voice ? 0x80 : 0) | (level.level & 0x7F)
                o += 2
            }
            if let time = values.absSendTime, ids.absSendTime != 0 {
                out[o] = ids.absSendTime << 4 | 2
                out[o + 1] = UInt8((time >> 16) & 0xFF)
                out[o + 2] = UInt8((time >> 8) & 0xFF)
                out[o + 3] = UInt8(time & 0xFF)
                o += 4
            }
            if let sequence = values.transportSequence, ids.transportWideCC != 0 {
                out[o] = ids.transportWideCC << 4 | 1
                out.storeBigEndian(sequence, at: o + 1)
                o += 3
            }
            if let orientation = values.videoOrientation, ids.videoOrientation != 0 {
                out[o] = ids.videoOrientation << 4
                out[o + 1] = orientation
                o += 2
            }
            while o < end {
                out[o] = 0
                o += 1
            }
        }
        return o
    }

    /// abs-send-time for a monotonic time: seconds in 6.18 fixed point, modulo 64 s.
    public static func absSendTime(nanos: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: (nanos << 18) / 1_000_000_000) & 0xFF_FFFF
    }
}
