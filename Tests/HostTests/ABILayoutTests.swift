import PluginAPI
import Testing

/// The plugin ABI's layout, frozen: the size, alignment and every field offset of every struct the
/// header declares, as a C compiler lays them out on LP64 Linux (x86_64 and aarch64 agree; the
/// numbers came from clang's -fdump-record-layouts). A minor version only appends fields, so an
/// offset here never changes while the major stays 1: a failure here means a plugin built against
/// an older header would read the wrong field. Appending a field is the one accepted change: add
/// its offset and the new size.
@Suite struct ABILayoutTests {
    private func check<T>(_ type: T.Type, size: Int, alignment: Int, _ fields: [(String, PartialKeyPath<T>, Int)]) {
        #expect(MemoryLayout<T>.size == size, "sizeof(\(T.self))")
        #expect(MemoryLayout<T>.alignment == alignment, "alignment of \(T.self)")
        for (name, field, offset) in fields {
            #expect(MemoryLayout<T>.offset(of: field) == offset, "offsetof(\(T.self), \(name))")
        }
    }

    @Test func everyStructKeepsItsSizeAndFieldOffsets() {
        check(atrium_version_t.self, size: 4, alignment: 2, [
            ("major", \.major, 0),
            ("minor", \.minor, 2),
        ])
        check(atrium_handle_t.self, size: 56, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("id", \.id, 8),
            ("session_id", \.session_id, 16),
            ("plugin_data", \.plugin_data, 24),
            ("host_data", \.host_data, 32),
            ("opaque_id", \.opaque_id, 40),
            ("client_address", \.client_address, 48),
        ])
        check(atrium_rtp_packet_t.self, size: 56, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("mindex", \.mindex, 4),
            ("is_video", \.is_video, 8),
            ("buffer", \.buffer, 16),
            ("length", \.length, 24),
            ("audio_level", \.audio_level, 28),
            ("audio_voice", \.audio_voice, 32),
            ("video_rotation", \.video_rotation, 36),
            ("mid", \.mid, 40),
            ("rid", \.rid, 48),
        ])
        check(atrium_rtcp_packet_t.self, size: 32, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("mindex", \.mindex, 4),
            ("is_video", \.is_video, 8),
            ("buffer", \.buffer, 16),
            ("length", \.length, 24),
        ])
        check(atrium_data_packet_t.self, size: 48, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("label", \.label, 8),
            ("protocol", \.protocol, 16),
            ("is_binary", \.is_binary, 24),
            ("buffer", \.buffer, 32),
            ("length", \.length, 40),
        ])
        check(atrium_reply_t.self, size: 40, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("host_data", \.host_data, 8),
            ("set_reply", \.set_reply, 16),
            ("set_hint", \.set_hint, 24),
            ("set_error", \.set_error, 32),
        ])
        check(atrium_host_t.self, size: 112, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("abi_version", \.abi_version, 4),
            ("host_data", \.host_data, 8),
            ("get_extension", \.get_extension, 16),
            ("log", \.log, 24),
            ("push_event", \.push_event, 32),
            ("end_handle", \.end_handle, 40),
            ("close_pc", \.close_pc, 48),
            ("relay_rtp", \.relay_rtp, 56),
            ("relay_rtcp", \.relay_rtcp, 64),
            ("relay_data", \.relay_data, 72),
            ("request_keyframe", \.request_keyframe, 80),
            ("send_remb", \.send_remb, 88),
            ("set_labels", \.set_labels, 96),
            ("post_control", \.post_control, 104),
        ])
        check(atrium_plugin_t.self, size: 128, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("abi_version", \.abi_version, 4),
            ("plugin_data", \.plugin_data, 8),
            ("init", \.`init`, 16),
            ("destroy", \.destroy, 24),
            ("get_extension", \.get_extension, 32),
            ("handle_created", \.handle_created, 40),
            ("handle_destroyed", \.handle_destroyed, 48),
            ("handle_message", \.handle_message, 56),
            ("setup_media", \.setup_media, 64),
            ("hangup_media", \.hangup_media, 72),
            ("incoming_rtp", \.incoming_rtp, 80),
            ("incoming_rtcp", \.incoming_rtcp, 88),
            ("incoming_data", \.incoming_data, 96),
            ("media_state", \.media_state, 104),
            ("slow_link", \.slow_link, 112),
            ("query_handle", \.query_handle, 120),
        ])
        check(atrium_plugin_entry_t.self, size: 64, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("abi_version", \.abi_version, 4),
            ("id", \.id, 8),
            ("name", \.name, 16),
            ("description", \.description, 24),
            ("author", \.author, 32),
            ("version_string", \.version_string, 40),
            ("version", \.version, 48),
            ("create", \.create, 56),
        ])
        check(atrium_plugin_service_t.self, size: 32, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("start", \.start, 8),
            ("stop", \.stop, 16),
            ("health", \.health, 24),
        ])
        check(atrium_metrics_writer_t.self, size: 24, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("host_data", \.host_data, 8),
            ("write", \.write, 16),
        ])
        check(atrium_plugin_metrics_t.self, size: 16, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("collect", \.collect, 8),
        ])
        check(atrium_plugin_admin_t.self, size: 16, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("handle_admin_message", \.handle_admin_message, 8),
        ])
        check(atrium_host_events_t.self, size: 16, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("publish", \.publish, 8),
        ])
        check(atrium_plugin_events_t.self, size: 16, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("on_event", \.on_event, 8),
        ])
        check(atrium_tap_stream_t.self, size: 96, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("stream_id", \.stream_id, 8),
            ("handle_id", \.handle_id, 16),
            ("labels_json", \.labels_json, 24),
            ("labels_len", \.labels_len, 32),
            ("is_video", \.is_video, 40),
            ("mid", \.mid, 48),
            ("rid", \.rid, 56),
            ("codec", \.codec, 64),
            ("payload_type", \.payload_type, 72),
            ("clock_rate", \.clock_rate, 76),
            ("ssrc", \.ssrc, 80),
            ("fmtp", \.fmtp, 88),
        ])
        check(atrium_host_tap_t.self, size: 24, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("request_keyframe", \.request_keyframe, 8),
            ("request_retransmission", \.request_retransmission, 16),
        ])
        check(atrium_plugin_tap_t.self, size: 48, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("stream_started", \.stream_started, 8),
            ("stream_rtp", \.stream_rtp, 16),
            ("stream_rtcp", \.stream_rtcp, 24),
            ("stream_ended", \.stream_ended, 32),
            ("labels_changed", \.labels_changed, 40),
        ])
        check(atrium_host_group_t.self, size: 24, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("set_group", \.set_group, 8),
            ("media_loop", \.media_loop, 16),
        ])
        check(atrium_host_timer_t.self, size: 24, alignment: 8, [
            ("struct_size", \.struct_size, 0),
            ("schedule", \.schedule, 8),
            ("cancel", \.cancel, 16),
        ])
    }
}
