import RTC

/// One received RTP packet as the recorder keeps it: the header fields it orders and splits frames
/// by, and its own copy of the payload (after CSRCs, header extension and padding), so that it can
/// wait in a reorder buffer after the network buffer is reused.
public struct ReceivedPacket: Sendable, Equatable {
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var marker: Bool
    public var payloadType: UInt8
    public var ssrc: UInt32
    public var payload: [UInt8]
    /// When the packet arrived, in nanoseconds of a monotonic clock (the one `release(now:)` is given).
    public var arrivalNanos: UInt64

    public init(
        sequenceNumber: UInt16, timestamp: UInt32, marker: Bool = false, payloadType: UInt8 = 96,
        ssrc: UInt32 = 0, payload: [UInt8], arrivalNanos: UInt64 = 0
    ) {
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.marker = marker
        self.payloadType = payloadType
        self.ssrc = ssrc
        self.payload = payload
        self.arrivalNanos = arrivalNanos
    }

    /// A copy of a packet already validated as RTP.
    public init(_ view: RTPPacketView, arrivalNanos: UInt64) {
        sequenceNumber = view.sequenceNumber
        timestamp = view.timestamp
        marker = view.marker
        payloadType = view.payloadType
        ssrc = view.ssrc
        payload = Array(UnsafeRawBufferPointer(rebasing: view.buffer[view.payloadOffset..<(view.payloadOffset + view.payloadLength)]))
        self.arrivalNanos = arrivalNanos
    }

    /// A copy of the RTP packet in `bytes`, or nil when they are not a well-formed RTP packet
    /// (RFC 3550 §5.1: version, CSRC list, extension and padding inside the packet).
    public init?(bytes: UnsafeRawBufferPointer, arrivalNanos: UInt64) {
        guard let base = bytes.baseAddress else { return nil }
        // RTPPacketView only reads during validation and the reads below; nothing writes through it.
        let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: base), count: bytes.count)
        guard let view = try? RTPPacketView(buffer: buffer, length: bytes.count) else { return nil }
        self.init(view, arrivalNanos: arrivalNanos)
    }

    /// The same, from an array.
    public init?(bytes: [UInt8], arrivalNanos: UInt64) {
        guard let packet = bytes.withUnsafeBytes({ ReceivedPacket(bytes: $0, arrivalNanos: arrivalNanos) }) else { return nil }
        self = packet
    }
}
