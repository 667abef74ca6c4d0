import RTC
#if canImport(Glibc)
import Glibc
#endif

/// Why the media socket could not be opened, for the start-up message.
struct MediaSocketError: Error, CustomStringConvertible {
    var description: String
}

/// A non-blocking IPv4 UDP socket: the one port every peer's ICE, DTLS, SRTP and SRTCP share.
/// The corresponding C calls are socket, bind, recvfrom and sendto (RTC's socket helpers).
final class UDPSocket {
    let fd: Int32
    let port: UInt16

    init(bind address: String, port: Int) throws(MediaSocketError) {
        guard let local = TransportAddress(address, port) else {
            throw MediaSocketError(description: "media.bind: \"\(address)\" is not an IP address")
        }
        do {
            fd = try udpSocket(local, bufferBytes: 4 << 20)
        } catch {
            throw MediaSocketError(description: "cannot bind UDP \(address):\(port) (media.udp_port): \(error)")
        }
        self.port = localAddress(fd)?.port ?? UInt16(port)
    }

    deinit { close(fd) }

    /// Reads one datagram into `buffer`; nil when nothing is waiting.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> (length: Int, from: TransportAddress)? {
        receiveDatagram(fd, into: buffer)
    }

    /// Sends one datagram; false when the kernel refused it (buffer full, unreachable).
    @discardableResult
    func send(_ bytes: UnsafeRawBufferPointer, to address: TransportAddress) -> Bool {
        sendDatagram(fd, bytes, to: address)
    }
}

/// The machine's IPv4 addresses that are up and not loopback.
func interfaceAddresses() -> [IPAddress] {
    machineAddresses().filter(\.isIPv4)
}
