import Foundation
import RTC
import Testing
@testable import Host
#if canImport(Glibc)
import Glibc
#endif

/// The media sockets' default "::" on a kernel built without IPv6.
@Suite struct MediaSocketFamilyTests {
    @Test func withoutIPv6TheDefaultFallsBackToIPv4() throws {
        var tried: [(String, Bool)] = []
        let (fd, _, dual) = try openMediaSocket("::", 0, "cannot bind UDP", key: "media.udp_port") { (a, dual) throws(SocketError) in
            tried.append((a.ip.description, dual))
            if !a.ip.isIPv4 { throw SocketError(message: "socket: Address family not supported by protocol", code: EAFNOSUPPORT) }
            return try udpSocket(a, dualStack: dual)
        }
        close(fd)
        #expect(tried.map(\.0) == ["::", "0.0.0.0"] && tried.map(\.1) == [true, false])
        #expect(!dual, "an IPv4 socket: addresses go out unmapped")
    }

    @Test func otherFailuresNameTheKey() {
        #expect(throws: MediaSocketError.self) {
            try openMediaSocket("::", 0, "cannot bind UDP", key: "media.udp_port") { (_, _) throws(SocketError) -> Int32 in
                throw SocketError(message: "bind: Address already in use", code: EADDRINUSE)
            }
        }
        do {
            _ = try openMediaSocket("::", 0, "cannot bind UDP", key: "media.udp_port") { (_, _) throws(SocketError) -> Int32 in
                throw SocketError(message: "bind: Address already in use", code: EADDRINUSE)
            }
        } catch {
            #expect(error.description == "cannot bind UDP :::0 (media.udp_port): bind: Address already in use")
        }
    }
}
