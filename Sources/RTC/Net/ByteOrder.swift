extension UnsafeMutableRawBufferPointer {
    /// Writes `value` in network byte order at `offset` (unaligned is fine).
    @inlinable
    public func storeBigEndian(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Writes `value` in network byte order at `offset` (unaligned is fine).
    @inlinable
    public func storeBigEndian(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
}
