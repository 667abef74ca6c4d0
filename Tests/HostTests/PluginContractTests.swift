import Logging
import PluginAPI
import Testing
@testable import Host

/// What the host promises plugins about reply codes and media calls from other threads (ABI 1.2),
/// checked where no process is needed. The e2e test_c_plugin.py shows the same through a real plugin.
@Suite struct PluginContractTests {
    @Test func repliesOfPluginsBuiltAgainst10And11AreReadTheOldWay() {
        for minor: UInt16 in [0, 1] {
            #expect(ReplyCode(0, abiMinor: minor) == .reply)
            #expect(ReplyCode(1, abiMinor: minor) == .ack)
            #expect(ReplyCode(-1, abiMinor: minor) == .error)
            #expect(ReplyCode(2, abiMinor: minor) == .error)
        }
    }

    @Test func repliesOf12AreAboveZeroAndAStatusStandsForAFailure() {
        #expect(ReplyCode(ATRIUM_MESSAGE_REPLY, abiMinor: 2) == .reply)
        #expect(ReplyCode(ATRIUM_MESSAGE_ACK, abiMinor: 2) == .ack)
        #expect(ReplyCode(ATRIUM_MESSAGE_ERROR, abiMinor: 2) == .error)
        #expect(ReplyCode(ATRIUM_ERR_INVALID_ARGUMENT, abiMinor: 2) == .failed(ATRIUM_ERR_INVALID_ARGUMENT))
        #expect(ReplyCode(Int32.min, abiMinor: 2) == .failed(Int32.min))
        #expect(ReplyCode(ATRIUM_OK, abiMinor: 2) == .invalid(0))
        #expect(ReplyCode(4, abiMinor: 2) == .invalid(4))
        // A later minor keeps 1.2's codes.
        #expect(ReplyCode(ATRIUM_MESSAGE_ACK, abiMinor: 9) == .ack)
    }

    @Test func codesAndStatusesDoNotCollide() {
        let codes = [ATRIUM_MESSAGE_REPLY, ATRIUM_MESSAGE_ACK, ATRIUM_MESSAGE_ERROR]
        let statuses = [ATRIUM_OK, ATRIUM_ERR_INVALID_ARGUMENT, ATRIUM_ERR_NOT_FOUND, ATRIUM_ERR_STATE, ATRIUM_ERR_UNSUPPORTED,
                        ATRIUM_ERR_NO_MEMORY, ATRIUM_ERR_BUFFER_TOO_SMALL, ATRIUM_ERR_LIMIT, ATRIUM_ERR_INTERNAL]
        #expect(Set(codes).isDisjoint(with: statuses))
        #expect(Set(codes).count == 3)
    }

    /// A loop that is not running holds what is queued, so the bound shows exactly.
    @Test func aLoopHoldsAtMost4096PluginCallsFromOtherThreads() throws {
        let media = try MediaLoops(config: HostConfig.Media(), logger: Logger(label: "test")).engines[0]
        for _ in 0..<MediaEngine.maximumQueuedPluginCalls {
            #expect(media.postPluginCall {})
        }
        #expect(!media.postPluginCall {})
        #expect(MediaEngine.maximumQueuedPluginCalls == 4096, "the header promises 4096")
    }
}
