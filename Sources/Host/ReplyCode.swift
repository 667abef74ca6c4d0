import PluginAPI

/// What a plugin's handle_message (or handle_admin_message) returned, read by the ABI minor the
/// plugin was built against: 1.0 and 1.1 used 0, 1 and -1, which collide with atrium_status_t;
/// 1.2 moved the codes above 0 and lets a negative status stand for an unexplained failure.
enum ReplyCode: Equatable {
    case reply
    case ack
    case error
    /// A negative atrium_status_t returned in place of a code (1.2 and later).
    case failed(atrium_status_t)
    /// Anything else: the plugin broke the contract.
    case invalid(Int32)

    init(_ returned: Int32, abiMinor: UInt16) {
        if abiMinor < 2 {
            switch returned {
            case 0: self = .reply
            case 1: self = .ack
            default: self = .error
            }
            return
        }
        switch returned {
        case ATRIUM_MESSAGE_REPLY: self = .reply
        case ATRIUM_MESSAGE_ACK: self = .ack
        case ATRIUM_MESSAGE_ERROR: self = .error
        case ..<0: self = .failed(returned)
        default: self = .invalid(returned)
        }
    }
}

/// The name of a status code as the header spells it, for messages people read.
func statusName(_ status: atrium_status_t) -> String {
    switch status {
    case ATRIUM_OK: "ATRIUM_OK"
    case ATRIUM_ERR_INVALID_ARGUMENT: "ATRIUM_ERR_INVALID_ARGUMENT"
    case ATRIUM_ERR_NOT_FOUND: "ATRIUM_ERR_NOT_FOUND"
    case ATRIUM_ERR_STATE: "ATRIUM_ERR_STATE"
    case ATRIUM_ERR_UNSUPPORTED: "ATRIUM_ERR_UNSUPPORTED"
    case ATRIUM_ERR_NO_MEMORY: "ATRIUM_ERR_NO_MEMORY"
    case ATRIUM_ERR_BUFFER_TOO_SMALL: "ATRIUM_ERR_BUFFER_TOO_SMALL"
    case ATRIUM_ERR_LIMIT: "ATRIUM_ERR_LIMIT"
    case ATRIUM_ERR_INTERNAL: "ATRIUM_ERR_INTERNAL"
    default: "status \(status)"
    }
}
