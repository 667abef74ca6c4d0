/*
 * atrium_plugin.h: the Atrium plugin ABI, version 1 (minor 2).
 *
 * This one header IS the contract between the Atrium host and every plugin. A plugin is a shared
 * library named libatrium_<name>.so that exports exactly one symbol, `atrium_plugin_entry`, and
 * calls nothing of the host except through the tables below. Only C types cross: JSON travels as
 * borrowed UTF-8 text with a length, media as borrowed byte buffers.
 *
 * ---------------------------------------------------------------------------------------------
 * Versioning
 *   Every struct that crosses starts with `struct_size` (sizeof as the producer compiled it) and,
 *   for the top-level tables, `abi_version`. The host refuses a plugin whose major differs (in both
 *   directions) and accepts any minor. A minor version only appends fields at the end of structs;
 *   a reader copies min(struct_size, sizeof) into a zeroed local, so fields it does not know read
 *   as zero/NULL. Fields are never removed or reordered while the major stays 1.
 *   Optional capabilities are extensions looked up by string id ("atrium.tap/1"), in both
 *   directions; NULL means unsupported. An extension id never changes once published; a changed
 *   extension gets a new id ("atrium.tap/2").
 *   Rationale: Janus bumped one integer on every struct change and broke every out-of-tree plugin
 *   each time; extensions let features arrive without touching what already works.
 *
 * Threads (the tags on every function pointer)
 *   A plugin function's tag says on which thread the host calls it; a host function's tag says
 *   from where a plugin may call it. After "&" comes a condition on when, as in [control & init]
 *   (only while init runs) or [any & live handle].
 *   [control]  The plugin's control context. The host calls at most one [control] function of a
 *              given plugin at a time (they are serialized per plugin, in the order the requests
 *              arrived), never from a media thread. A [control] function may block briefly, but
 *              every request of that plugin waits for it. Any thread reaches it with post_control
 *              (since 1.2).
 *   [media]    A media loop's thread. The host may run several media loops; each handle lives on
 *              one, and its media callbacks always arrive on that loop's thread, in order. Handles
 *              of different loops get callbacks at the same time, so state a plugin shares between
 *              handles needs its own synchronisation unless it keeps those handles on one loop.
 *              Code here must not block, take contended locks, do I/O or allocate per packet.
 *   [any]      May be called from any thread, including threads the plugin created; thread-safe.
 *   Host functions that act on a handle's media (relay_*, request_keyframe, send_remb) are [any]
 *   with a fast path on the handle's own loop: see "Media from any thread" at the host table.
 *
 * Ownership
 *   Unless a sentence says otherwise: pointers passed INTO a function are borrowed and valid until
 *   that function returns (copy what you keep); pointers returned are owned by the callee that
 *   returned them and valid for the lifetime stated next to the function. Text comes back through a
 *   caller-provided buffer and capacity, never through memory that the other side must free.
 *
 * Errors
 *   Functions that can fail return atrium_status_t: ATRIUM_OK (0) or a negative ATRIUM_ERR_*.
 *   A message for people goes into an (err, err_cap) buffer when one is provided, NUL-terminated
 *   and truncated to fit. Application-level errors (a chat room that does not exist) are not
 *   status codes: they are ordinary JSON replies or events, as in the Janus API.
 * ---------------------------------------------------------------------------------------------
 */
#ifndef ATRIUM_PLUGIN_H
#define ATRIUM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__clang__)
#define ATRIUM_NULLABLE _Nullable
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wnullability-extension"
#pragma clang assume_nonnull begin
#else
#define ATRIUM_NULLABLE
#endif

/* ABI version of this header. */
#define ATRIUM_ABI_VERSION_MAJOR 1
#define ATRIUM_ABI_VERSION_MINOR 2

/* The one symbol every plugin library exports. */
#define ATRIUM_PLUGIN_ENTRY_SYMBOL "atrium_plugin_entry"

typedef struct atrium_version {
    uint16_t major;
    uint16_t minor;
} atrium_version_t;

#define ATRIUM_ABI_VERSION_INIT { ATRIUM_ABI_VERSION_MAJOR, ATRIUM_ABI_VERSION_MINOR }

/* ---- Status codes ---------------------------------------------------------------------------- */

typedef int32_t atrium_status_t;

#define ATRIUM_OK                      0
#define ATRIUM_ERR_INVALID_ARGUMENT   -1  /* a NULL, malformed or out-of-range argument */
#define ATRIUM_ERR_NOT_FOUND          -2  /* unknown handle, stream or id */
#define ATRIUM_ERR_STATE              -3  /* not valid now (handle closing, no PeerConnection, ...) */
#define ATRIUM_ERR_UNSUPPORTED        -4  /* the other side does not offer this */
#define ATRIUM_ERR_NO_MEMORY          -5
#define ATRIUM_ERR_BUFFER_TOO_SMALL   -6  /* the output did not fit the caller's buffer */
#define ATRIUM_ERR_LIMIT              -7  /* a configured limit (size, rate, count) was hit */
#define ATRIUM_ERR_INTERNAL           -8  /* anything else; the message buffer says what */

/* ---- Logging levels (host.log) --------------------------------------------------------------- */

#define ATRIUM_LOG_ERROR    0
#define ATRIUM_LOG_WARNING  1
#define ATRIUM_LOG_INFO     2
#define ATRIUM_LOG_DEBUG    3
/* The plugin noticed the host breaking this contract (or the reverse, when the host logs it). */
#define ATRIUM_LOG_MISBEHAVING 4

typedef struct atrium_host atrium_host_t;
typedef struct atrium_plugin atrium_plugin_t;

/* ---- Handles ----------------------------------------------------------------------------------
 * A handle is one client's attachment to one plugin (the Janus "handle"). The host owns the struct;
 * it is valid from the handle_created call until handle_destroyed returns. The plugin may store its
 * own per-handle state in `plugin_data` (during handle_created, or later from [control]).
 */
typedef struct atrium_handle {
    uint32_t struct_size;
    uint64_t id;          /* the handle id clients see (53-bit) */
    uint64_t session_id;  /* the session it belongs to (53-bit) */
    /* Owned by the plugin; the host never reads or frees it. */
    void *ATRIUM_NULLABLE plugin_data;
    /* Owned by the host; the plugin never touches it. */
    void *ATRIUM_NULLABLE host_data;
    /* Borrowed, NUL-terminated, valid for the handle's lifetime: the opaque_id the client
     * gave at attach, or "" if none. */
    const char *opaque_id;
    /* Since 1.1. Borrowed, NUL-terminated, valid for the handle's lifetime: the address of the
     * client that attached, as the host keys its fair shares: an IPv4 address ("203.0.113.7"), an
     * IPv6 /64 ("2001:db8:1:2::/64"), or "" when unknown. A host of minor 0 leaves it NULL (read
     * it only when struct_size covers it).
     * Rationale: accountless meetings make every client anonymous, so the address is the only
     * identity a plugin can bound what one client creates (rooms, recordings, TURN credentials);
     * one /64 is what one IPv6 subscriber is given, so a key per address would be no bound. */
    const char *ATRIUM_NULLABLE client_address;
} atrium_handle_t;

/* ---- Media -------------------------------------------------------------------------------------
 * Packets are plain (decrypted) RTP/RTCP. The host lends the buffer for the duration of the call;
 * a plugin that keeps a packet copies it. Packets given to the host (relay_*) are copied by the
 * host before relay_* returns.
 */
typedef struct atrium_rtp_packet {
    uint32_t struct_size;
    int32_t mindex;             /* m-line index of the stream, -1 = first stream of this kind */
    int32_t is_video;           /* 1 video, 0 audio */
    const uint8_t *buffer;      /* the RTP packet, header included */
    uint32_t length;
    /* Parsed extension values, authoritative on relay (the host writes only negotiated ones).
     * -1 means absent. */
    int32_t audio_level;        /* RFC 6464 level 0..127 dBov */
    int32_t audio_voice;        /* RFC 6464 V bit: 1 voice, 0 not */
    int32_t video_rotation;     /* 0/90/180/270 */
    const char *ATRIUM_NULLABLE mid;  /* borrowed NUL-terminated mid of the stream, or NULL */
    const char *ATRIUM_NULLABLE rid;  /* borrowed NUL-terminated rid (simulcast), or NULL */
} atrium_rtp_packet_t;

typedef struct atrium_rtcp_packet {
    uint32_t struct_size;
    int32_t mindex;
    int32_t is_video;
    const uint8_t *buffer;      /* a (compound) RTCP packet */
    uint32_t length;
} atrium_rtcp_packet_t;

typedef struct atrium_data_packet {
    uint32_t struct_size;
    const char *ATRIUM_NULLABLE label;    /* borrowed NUL-terminated channel label, NULL = default */
    const char *ATRIUM_NULLABLE protocol; /* borrowed NUL-terminated, NULL = none */
    int32_t is_binary;
    const uint8_t *buffer;
    uint32_t length;
} atrium_data_packet_t;

/* Why a PeerConnection went away (hangup_media); the host sends the matching Janus reason text. */
#define ATRIUM_HANGUP_CLIENT          0  /* "Janus API": the client asked */
#define ATRIUM_HANGUP_CLOSE_PC        1  /* "Close PC": a plugin asked */
#define ATRIUM_HANGUP_DTLS_ALERT      2
#define ATRIUM_HANGUP_ICE_FAILED      3  /* includes consent freshness expiry */
#define ATRIUM_HANGUP_DETACH          4
#define ATRIUM_HANGUP_ADMIN           5
#define ATRIUM_HANGUP_ERROR           6

/* ---- The reply to a message ------------------------------------------------------------------
 * handle_message answers through this host-provided object. Exactly one of:
 *  - set_reply(json) and return ATRIUM_MESSAGE_REPLY: the client gets a synchronous "success" whose
 *    plugindata.data is that JSON object;
 *  - return ATRIUM_MESSAGE_ACK (optionally set_hint first): the client gets "ack" and the plugin
 *    answers later with push_event, passing the same transaction;
 *  - set_error(text) and return ATRIUM_MESSAGE_ERROR: the client gets Janus error 462 with that reason.
 *    (Use this only for failures of the plugin itself; application errors are replies.)
 * Since 1.2 a negative atrium_status_t may be returned instead, for a failure the plugin did not
 * explain: 462 with the status's name (or the set_error text). ATRIUM_OK (0) is not a reply code:
 * the client gets 462 and the host logs the plugin as misbehaving.
 * The host reads the codes by the minor version in the plugin table's abi_version: a plugin built
 * against 1.0 or 1.1 returned 0 (reply), 1 (ack) or -1 (error), and is still read that way.
 * Rationale: in 1.0 the reply codes were 0, 1 and -1, so ATRIUM_MESSAGE_ERROR was
 * ATRIUM_ERR_INVALID_ARGUMENT and `return status;` of a host call that succeeded (ATRIUM_OK) read as
 * a reply without content. Codes above 0 cannot be mistaken for a status in either direction.
 */
#define ATRIUM_MESSAGE_REPLY   1
#define ATRIUM_MESSAGE_ACK     2
#define ATRIUM_MESSAGE_ERROR   3

typedef struct atrium_reply atrium_reply_t;
struct atrium_reply {
    uint32_t struct_size;
    void *ATRIUM_NULLABLE host_data;  /* owned by the host */
    /* [control & the call that was given this reply] Set the synchronous reply: a JSON object as
     * UTF-8 text, borrowed until return (the host copies it). Returns ATRIUM_ERR_INVALID_ARGUMENT
     * if it is not a JSON object. The reply object is dead once that call returns. */
    atrium_status_t (*ATRIUM_NULLABLE set_reply)(const atrium_reply_t *reply, const char *json, size_t json_len);
    /* [control & the call that was given this reply] Set the hint shown in the "ack"
     * (NUL-terminated, borrowed until return). */
    atrium_status_t (*ATRIUM_NULLABLE set_hint)(const atrium_reply_t *reply, const char *hint);
    /* [control & the call that was given this reply] Set the reason of an ATRIUM_MESSAGE_ERROR
     * (NUL-terminated, borrowed until return). */
    atrium_status_t (*ATRIUM_NULLABLE set_error)(const atrium_reply_t *reply, const char *reason);
};

/* ---- What the host gives a plugin ------------------------------------------------------------
 * The host table. Owned by the host, valid from create until after destroy returns. Every function
 * takes the table itself first. Functions that name a handle return ATRIUM_ERR_NOT_FOUND (and do
 * nothing) once that handle is being destroyed, until handle_destroyed returns. After that the
 * pointer is dead: its memory may be reused for another handle of the same plugin, so a plugin
 * must drop every reference to a handle in handle_destroyed (cancel its timers, stop its threads).
 * During create and init no client exists yet: functions that name a handle, and publish, return
 * ATRIUM_ERR_STATE; log and get_extension work.
 *
 * Media from any thread (since 1.2; 1.0 and 1.1 hosts behaved the same on one media loop)
 *   relay_rtp, relay_rtcp, request_keyframe and send_remb may be called from any thread.
 *   - On the thread of the handle's own media loop (in a [media] callback of any handle of that
 *     loop) the call acts before it returns, on the caller's buffer, and its status says what
 *     happened. This is the forwarding path: no copy, no lock, no queue.
 *   - From any other thread ([control], a thread of the plugin, another media loop) the host
 *     copies what the call needs and queues it to the handle's loop, which acts on it after the
 *     work it has in hand, in the order one thread queued. ATRIUM_OK then means queued: if the
 *     handle has no PeerConnection when its turn comes, the call is dropped. Checks that need no
 *     PeerConnection are made at once (ATRIUM_ERR_NOT_FOUND for a handle that is gone,
 *     ATRIUM_ERR_INVALID_ARGUMENT for a packet of no or more than 1500 bytes).
 *   - A loop holds at most 4096 such calls queued from other threads; past that the call returns
 *     ATRIUM_ERR_LIMIT and does nothing (the caller produces faster than the loop sends).
 *   Rationale: a PeerConnection's SRTP state, sequence numbers and sockets belong to its loop.
 *   Queuing to that loop keeps the packet path free of locks at the cost of one copy for callers
 *   elsewhere, and a plugin that keeps a room's handles on one loop pays nothing. The bound keeps
 *   one plugin thread from growing a loop's memory without end.
 *
 * SDP contract: what a plugin's jsep must hold, and what the host does with it
 *   - The plugin writes the media part only: per m-line, the kind, direction, mid, codecs
 *     (rtpmap/fmtp/rtcp-fb), header extensions and, for simulcast, rid/simulcast lines. It must not
 *     rely on transport lines: the host replaces every connection line, candidate, ICE credential
 *     and option, fingerprint and setup line it finds with its own.
 *   - The host adds: ice-lite at session level; per accepted m-line its ICE ufrag and password, its
 *     sha-256 fingerprint, a=setup (actpass in an offer, active or passive in an answer), rtcp-mux,
 *     its host candidates and end-of-candidates; a BUNDLE group of the accepted mids (other groups
 *     are kept), msid-semantic, and for an m-line that sends with no a=ssrc line, one SSRC with a
 *     cname and an msid (streams "atrium-<handle id>"). An m-line that is not RTP (an m=application
 *     before data channels exist) is rejected (port 0); so is one with port 0 in the offer.
 *   - An answer has as many m-lines as the client's offer, in its order; the host copies each
 *     mid from the offer. An offer's m-lines without a mid get their index as mid.
 *   - The host sends RTP with its own SSRC per outgoing stream (relay_rtp rewrites it) and writes
 *     only the header extensions the description negotiated.
 *   - The offer or answer a plugin receives in handle_message is the client's jsep as sent, after
 *     the host accepted it (one BUNDLE group over DTLS-SRTP with rtcp-mux, ICE credentials and a
 *     sha-256 fingerprint; anything else was refused with 465, an answer nobody asked for with 469,
 *     before the plugin saw it).
 */
struct atrium_host {
    uint32_t struct_size;
    atrium_version_t abi_version;
    void *ATRIUM_NULLABLE host_data;  /* owned by the host */

    /* [any] Look up a host extension by id. Returns a const table owned by the host, valid until
     * the plugin is destroyed, or NULL if unsupported. `id` is borrowed. */
    const void *ATRIUM_NULLABLE (*ATRIUM_NULLABLE get_extension)(const atrium_host_t *host, const char *id);

    /* [any] Write a log line (NUL-terminated, borrowed) attributed to this plugin. */
    void (*ATRIUM_NULLABLE log)(const atrium_host_t *host, int32_t level, const char *message);

    /* [any] Send an event to the client of `handle`: `event_json` is a JSON object (borrowed until
     * return; the host copies it) that becomes plugindata.data of a Janus "event".
     * `transaction` (NUL-terminated, borrowed, or NULL for unsolicited events) is the transaction of
     * the request being answered. `jsep_json` is NULL or a JSON object {"type":"offer"|"answer",
     * "sdp":"..."} whose SDP carries only the media part; the host completes it with ICE, DTLS and
     * candidates before it leaves (live with media). Never blocks.
     * Ordering: an event pushed from the plugin's [control] context while handle_message runs is
     * held by the host until the reply to that message has gone out, so a client sees "ack" before
     * the event it announces. Events pushed from other threads are sent at once and may overtake
     * a reply that is still being produced.
     * Returns ATRIUM_ERR_NOT_FOUND if the handle is gone, ATRIUM_ERR_INVALID_ARGUMENT for JSON that is
     * not an object or a bad jsep. */
    atrium_status_t (*ATRIUM_NULLABLE push_event)(const atrium_host_t *host, const atrium_handle_t *handle,
                                  const char *ATRIUM_NULLABLE transaction,
                                  const char *event_json, size_t event_len,
                                  const char *ATRIUM_NULLABLE jsep_json, size_t jsep_len);

    /* [any] Ask the host to remove the handle, as if the client detached: the client gets
     * "detached", the plugin gets handle_destroyed later on [control]. Asynchronous. */
    atrium_status_t (*ATRIUM_NULLABLE end_handle)(const atrium_host_t *host, const atrium_handle_t *handle);

    /* [any] Tear down the handle's PeerConnection (the client gets "hangup", reason "Close PC",
     * and the plugin hangup_media). Asynchronous; the handle stays. */
    atrium_status_t (*ATRIUM_NULLABLE close_pc)(const atrium_host_t *host, const atrium_handle_t *handle);

    /* [any & live handle; fast on the handle's loop] Send RTP to the handle's peer (see "Media
     * from any thread"). The host copies the packet before returning, rewrites the SSRC to its own
     * for that stream, encrypts and sends it. The plugin keeps sequence and timestamp continuity
     * when it switches sources. On the handle's loop: ATRIUM_ERR_STATE when the PeerConnection is
     * not connected, ATRIUM_ERR_NOT_FOUND when it has no stream of that kind or mindex. */
    atrium_status_t (*ATRIUM_NULLABLE relay_rtp)(const atrium_host_t *host, const atrium_handle_t *handle,
                                 const atrium_rtp_packet_t *packet);
    /* [any & live handle; fast on the handle's loop] Send (compound) RTCP to the handle's peer;
     * copied before return. */
    atrium_status_t (*ATRIUM_NULLABLE relay_rtcp)(const atrium_host_t *host, const atrium_handle_t *handle,
                                  const atrium_rtcp_packet_t *packet);
    /* [any] Send a data-channel message to the handle's peer; copied before return. */
    atrium_status_t (*ATRIUM_NULLABLE relay_data)(const atrium_host_t *host, const atrium_handle_t *handle,
                                  const atrium_data_packet_t *packet);
    /* [any & live handle] Ask the handle's peer for a keyframe (PLI) on stream `mindex` (-1: every
     * video stream). The host throttles repeated requests. */
    atrium_status_t (*ATRIUM_NULLABLE request_keyframe)(const atrium_host_t *host, const atrium_handle_t *handle,
                                        int32_t mindex);
    /* [any & live handle] Cap what the handle's peer sends us: a REMB with this bitrate in bits per
     * second. */
    atrium_status_t (*ATRIUM_NULLABLE send_remb)(const atrium_host_t *host, const atrium_handle_t *handle,
                                 uint64_t bitrate);

    /* [any] Label the handle for taps and for the admin API: `labels_json` is a JSON object of
     * string values (e.g. {"room":"1234","participant":"42","display":"Alice"}), borrowed until
     * return. Replaces the previous labels. A media plugin labels the handles whose streams belong
     * to a meeting so that tap plugins (the Recorder) find them without knowing the plugin. */
    atrium_status_t (*ATRIUM_NULLABLE set_labels)(const atrium_host_t *host, const atrium_handle_t *handle,
                                  const char *labels_json, size_t labels_len);

    /* [any & after create] Since 1.2 (NULL from an older host). Call `fn(plugin, user_data)` once on
     * the plugin's [control] context, soon: after the [control] call running now, if any, returns.
     * Calls posted by one thread run in the order posted. `user_data` is owned by the plugin.
     * Every call posted before destroy begins runs before destroy. Returns ATRIUM_OK;
     * ATRIUM_ERR_INVALID_ARGUMENT for a NULL fn; ATRIUM_ERR_STATE once destroy has begun (fn will
     * not run); ATRIUM_ERR_LIMIT while 65536 posted calls of this plugin wait (fn will not run).
     * Rationale: a [media] callback that sees something the client must hear of (a new speaker, a
     * layer change) cannot push_event in order with [control]'s replies, nor take [control]'s
     * locks; a timer that polls for it costs a wake-up each interval whether anything happened
     * or not. This is CLAP's request_callback, with a bound. */
    atrium_status_t (*ATRIUM_NULLABLE post_control)(const atrium_host_t *host,
                                    void (*ATRIUM_NULLABLE fn)(const atrium_plugin_t *plugin,
                                                               void *ATRIUM_NULLABLE user_data),
                                    void *ATRIUM_NULLABLE user_data);
};

/* ---- What a plugin gives the host ------------------------------------------------------------
 * The plugin instance table, returned by the entry's create. Owned by the plugin, valid until
 * destroy returns. Functions marked "Optional" may be NULL; all others are required, and the host
 * refuses to load a plugin with a required one missing (naming it).
 * Rationale: every function pointer in every table is declared nullable, required or not, because a
 * table written against an older minor, or by a careless plugin, may hold NULL there; the reader
 * checks instead of trusting.
 */
struct atrium_plugin {
    uint32_t struct_size;
    atrium_version_t abi_version;
    void *ATRIUM_NULLABLE plugin_data;  /* owned by the plugin */

    /* [control] Start the plugin. `config_json` is the plugin's "config" object from the host's
     * configuration file (always a JSON object, "{}" when absent), borrowed until return.
     * On failure return a negative status and write the reason into err (err_cap bytes); the
     * host then refuses to start (or skips the plugin if the configuration marks it optional)
     * and calls destroy. */
    atrium_status_t (*ATRIUM_NULLABLE init)(const atrium_plugin_t *plugin, const char *config_json, size_t config_len,
                            char *err, size_t err_cap);

    /* [control] Stop everything and free the plugin. Called once, after every handle was
     * destroyed and every service stopped; no host function may be called after it returns. */
    void (*ATRIUM_NULLABLE destroy)(const atrium_plugin_t *plugin);

    /* [any] Look up a plugin extension by id; a const table owned by the plugin, valid until
     * destroy, or NULL. `id` is borrowed. */
    const void *ATRIUM_NULLABLE (*ATRIUM_NULLABLE get_extension)(const atrium_plugin_t *plugin, const char *id);

    /* [control] A client attached a handle to this plugin. Return ATRIUM_OK to accept; a negative
     * status refuses the attach (the client gets error 461 with the text in err). */
    atrium_status_t (*ATRIUM_NULLABLE handle_created)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                      char *err, size_t err_cap);

    /* [control] The handle is going away (detach, session destroyed or timed out, end_handle).
     * hangup_media was already called if a PeerConnection existed. Drop every reference to it;
     * the struct is freed when this returns. */
    void (*ATRIUM_NULLABLE handle_destroyed)(const atrium_plugin_t *plugin, atrium_handle_t *handle);

    /* [control] A Janus API "message" for this handle. `body_json` is the body object;
     * `jsep_json` is NULL or the jsep object ({"type","sdp"}; with media, the SDP as the host
     * accepted it). `transaction` is NUL-terminated. All borrowed until return. Answer through
     * `reply` (see atrium_reply_t) and return ATRIUM_MESSAGE_REPLY, _ACK or _ERROR. */
    int32_t (*ATRIUM_NULLABLE handle_message)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                              const char *transaction,
                              const char *body_json, size_t body_len,
                              const char *ATRIUM_NULLABLE jsep_json, size_t jsep_len,
                              const atrium_reply_t *reply);

    /* [control] Optional. The handle's PeerConnection is up (ICE and DTLS done); the client got
     * "webrtcup". */
    void (*ATRIUM_NULLABLE setup_media)(const atrium_plugin_t *plugin, atrium_handle_t *handle);

    /* [control] Optional. The handle's PeerConnection is gone; `reason` is an ATRIUM_HANGUP_*.
     * The handle stays and may negotiate again. */
    void (*ATRIUM_NULLABLE hangup_media)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                         int32_t reason);

    /* [media] Optional. Decrypted RTP from the peer. */
    void (*ATRIUM_NULLABLE incoming_rtp)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                         const atrium_rtp_packet_t *packet);
    /* [media] Optional. Decrypted RTCP from the peer (NACKs the host answered are removed). */
    void (*ATRIUM_NULLABLE incoming_rtcp)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                          const atrium_rtcp_packet_t *packet);
    /* [media] Optional. A data-channel message from the peer. */
    void (*ATRIUM_NULLABLE incoming_data)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                          const atrium_data_packet_t *packet);

    /* [control] Optional. Media on stream `mid` (NUL-terminated, borrowed) started (receiving=1) or
     * stopped (receiving=0) arriving; the client got the matching "media" event. */
    void (*ATRIUM_NULLABLE media_state)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                        const char *mid, int32_t is_video, int32_t receiving);

    /* [control] Optional. Losses crossed the slow-link threshold on stream `mid` (borrowed).
     * uplink=1: the peer reported losses on what we send it; 0: losses on what it sends us. */
    void (*ATRIUM_NULLABLE slow_link)(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                      const char *mid, int32_t is_video, int32_t uplink,
                                      uint32_t lost);

    /* [control] Optional. Plugin-specific state of the handle for the admin API's handle_info:
     * write a JSON object into out (out_cap bytes, NUL-terminated). Return ATRIUM_OK, or
     * ATRIUM_ERR_BUFFER_TOO_SMALL (the host retries once with a larger buffer). */
    atrium_status_t (*ATRIUM_NULLABLE query_handle)(const atrium_plugin_t *plugin,
                                                   atrium_handle_t *handle,
                                                   char *out, size_t out_cap);
};

/* ---- The entry -------------------------------------------------------------------------------- */

typedef struct atrium_plugin_entry {
    uint32_t struct_size;
    atrium_version_t abi_version;  /* the ATRIUM_ABI_VERSION this plugin was compiled against */

    /* Static, NUL-terminated strings owned by the library, valid while it is loaded. */
    const char *id;              /* unique id clients attach to, e.g. "atrium.plugin.chat" */
    const char *name;            /* short human name, e.g. "Chat" */
    const char *description;
    const char *author;
    const char *version_string;  /* e.g. "0.1.0" */
    uint32_t version;            /* a number that grows with each release, e.g. 100 */

    /* [control] Required. Create the plugin instance. `host` is owned by the host and stays valid until
     * destroy returns; keep it. Returns the plugin table (owned by the plugin) or NULL on failure
     * with a reason in err. init is called next. */
    const atrium_plugin_t *ATRIUM_NULLABLE (*ATRIUM_NULLABLE create)(const atrium_host_t *host,
                                                      char *err, size_t err_cap);
} atrium_plugin_entry_t;

/* The symbol each plugin library exports (ATRIUM_PLUGIN_ENTRY_SYMBOL). Returns a pointer to a
 * static descriptor owned by the library, valid while it is loaded. Must not fail or allocate. */
typedef const atrium_plugin_entry_t *ATRIUM_NULLABLE (*atrium_plugin_entry_fn)(void);

/* =================================================================================================
 * Extensions. Each id names a pair of tables: what the host offers (host.get_extension) and what a
 * plugin offers (plugin.get_extension). Every table starts with struct_size.
 * ================================================================================================= */

/* ---- "atrium.service/1" (plugin side): long-running listeners of the plugin (TURN). ------------
 * The host calls start after init, and stop before it destroys the plugin's handles on shutdown. */
#define ATRIUM_EXT_SERVICE "atrium.service/1"

typedef struct atrium_plugin_service {
    uint32_t struct_size;
    /* [control] Start listeners and threads. Negative status with err stops the host's start-up. */
    atrium_status_t (*ATRIUM_NULLABLE start)(const atrium_plugin_t *plugin, char *err, size_t err_cap);
    /* [control] Stop them; return only when no plugin thread calls the host any more. */
    void (*ATRIUM_NULLABLE stop)(const atrium_plugin_t *plugin);
    /* [any] Health for /health and the admin API: write a JSON object ({"ok":true,...}) into out. */
    atrium_status_t (*ATRIUM_NULLABLE health)(const atrium_plugin_t *plugin, char *out, size_t out_cap);
} atrium_plugin_service_t;

/* ---- "atrium.metrics/1" (plugin side): Prometheus metrics. ----------------------------------- */
#define ATRIUM_EXT_METRICS "atrium.metrics/1"

typedef struct atrium_metrics_writer atrium_metrics_writer_t;
struct atrium_metrics_writer {
    uint32_t struct_size;
    void *ATRIUM_NULLABLE host_data;  /* owned by the host */
    /* [any] Append Prometheus text-format lines (borrowed until return). Metric names must start
     * with "atrium_". */
    void (*ATRIUM_NULLABLE write)(const atrium_metrics_writer_t *writer, const char *text, size_t len);
};

typedef struct atrium_plugin_metrics {
    uint32_t struct_size;
    /* [any] Write the plugin's current metrics through `writer` (borrowed until return).
     * Called on every scrape of /metrics; must not block. */
    void (*ATRIUM_NULLABLE collect)(const atrium_plugin_t *plugin, const atrium_metrics_writer_t *writer);
} atrium_plugin_metrics_t;

/* ---- "atrium.admin/1" (plugin side): plugin requests through the admin API. -------------------- */
#define ATRIUM_EXT_ADMIN "atrium.admin/1"

typedef struct atrium_plugin_admin {
    uint32_t struct_size;
    /* [control] An admin API "message_plugin" request (already authenticated): answer with a JSON
     * object through reply->set_reply and return ATRIUM_MESSAGE_REPLY. */
    int32_t (*ATRIUM_NULLABLE handle_admin_message)(const atrium_plugin_t *plugin, const char *body_json,
                                    size_t body_len, const atrium_reply_t *reply);
} atrium_plugin_admin_t;

/* ---- "atrium.events/1": the event bus for JSON events (chat messages, joins, leaves). ---------
 * Any plugin may publish; plugins that offer the plugin-side table receive every event published
 * by others, with the publisher's id. Events are delivered on [control] of the receiving plugin,
 * asynchronously and in publication order. */
#define ATRIUM_EXT_EVENTS "atrium.events/1"

typedef struct atrium_host_events {
    uint32_t struct_size;
    /* [any] Publish an event: `topic` (NUL-terminated, e.g. "chat.message") and a JSON object,
     * both borrowed until return (copied). */
    atrium_status_t (*ATRIUM_NULLABLE publish)(const atrium_host_t *host, const char *topic,
                               const char *event_json, size_t event_len);
} atrium_host_events_t;

typedef struct atrium_plugin_events {
    uint32_t struct_size;
    /* [control] An event published by `source` (plugin id). All strings borrowed until return. */
    void (*ATRIUM_NULLABLE on_event)(const atrium_plugin_t *plugin, const char *source, const char *topic,
                     const char *event_json, size_t event_len);
} atrium_plugin_events_t;

/* ---- "atrium.tap/1": copies of labelled media streams for tap plugins (the Recorder). ---------
 * A tap plugin is told when a stream (one incoming SSRC on one m-line) of a labelled handle starts,
 * receives its packets, and is told when it ends. Streams of retransmission and redundancy payload
 * types (rtx, red, ulpfec) are not offered. Arrival times are microseconds of the host's monotonic
 * clock (CLOCK_MONOTONIC). */
#define ATRIUM_EXT_TAP "atrium.tap/1"

typedef struct atrium_tap_stream {
    uint32_t struct_size;
    uint64_t stream_id;        /* host-assigned, unique for the process lifetime */
    uint64_t handle_id;        /* the handle the stream arrives on */
    const char *labels_json;   /* the handle's labels (JSON object), borrowed */
    size_t labels_len;
    int32_t is_video;
    const char *mid;           /* borrowed, NUL-terminated */
    const char *ATRIUM_NULLABLE rid;  /* simulcast rid or NULL */
    const char *codec;         /* lower-case codec name: "opus", "vp8", "vp9", "h264", "av1" */
    uint32_t payload_type;
    uint32_t clock_rate;
    uint32_t ssrc;
    const char *ATRIUM_NULLABLE fmtp;  /* borrowed, or NULL */
} atrium_tap_stream_t;

typedef struct atrium_host_tap {
    uint32_t struct_size;
    /* [any] Ask the publisher of `stream_id` for a keyframe (throttled by the host). */
    atrium_status_t (*ATRIUM_NULLABLE request_keyframe)(const atrium_host_t *host, uint64_t stream_id);
    /* [any] Ask the publisher of `stream_id` to resend sequence numbers (a NACK). */
    atrium_status_t (*ATRIUM_NULLABLE request_retransmission)(const atrium_host_t *host, uint64_t stream_id,
                                              const uint16_t *seqs, uint32_t count);
} atrium_host_tap_t;

typedef struct atrium_plugin_tap {
    uint32_t struct_size;
    /* [control] A labelled stream started. Return 1 to receive its packets, 0 to ignore it.
     * `stream` is borrowed until return. */
    int32_t (*ATRIUM_NULLABLE stream_started)(const atrium_plugin_t *plugin, const atrium_tap_stream_t *stream);
    /* [media] An RTP packet of a stream this plugin asked for (borrowed until return). */
    void (*ATRIUM_NULLABLE stream_rtp)(const atrium_plugin_t *plugin, uint64_t stream_id,
                       const atrium_rtp_packet_t *packet, uint64_t arrival_us);
    /* [media] An RTCP packet (sender reports) of that stream's handle (borrowed until return). */
    void (*ATRIUM_NULLABLE stream_rtcp)(const atrium_plugin_t *plugin, uint64_t stream_id,
                        const atrium_rtcp_packet_t *packet, uint64_t arrival_us);
    /* [control] The stream ended (its PeerConnection closed, its handle's labels were removed, or a new
     * SSRC took its place on the same m-line and rid). Told to every tap plugin, also to those that
     * returned 0 from stream_started; no packet of the stream follows. */
    void (*ATRIUM_NULLABLE stream_ended)(const atrium_plugin_t *plugin, uint64_t stream_id);
    /* [control] A handle's labels changed (labels_json borrowed until return). */
    void (*ATRIUM_NULLABLE labels_changed)(const atrium_plugin_t *plugin, uint64_t handle_id,
                           const char *labels_json, size_t labels_len);
} atrium_plugin_tap_t;

/* ---- "atrium.timer/1" (host side): a serialized timer on the plugin's [control] context. -------- */
#define ATRIUM_EXT_TIMER "atrium.timer/1"

typedef struct atrium_host_timer {
    uint32_t struct_size;
    /* [any] Call `fire(plugin, user_data)` on the plugin's [control] context every `interval_ms`
     * milliseconds (the first call one interval from now) until cancelled; a one-shot timer cancels
     * itself from `fire`. `user_data` is owned by the plugin. Returns a timer id > 0, or 0 on
     * failure (interval_ms 0 is refused). The host cancels every timer of a plugin before destroy. */
    uint64_t (*ATRIUM_NULLABLE schedule)(const atrium_host_t *host, uint32_t interval_ms,
                         void (*ATRIUM_NULLABLE fire)(const atrium_plugin_t *plugin, void *ATRIUM_NULLABLE user_data),
                         void *ATRIUM_NULLABLE user_data);
    /* [any] Cancel a timer; after it returns `fire` is not called again for that id. */
    void (*ATRIUM_NULLABLE cancel)(const atrium_host_t *host, uint64_t timer_id);
} atrium_host_timer_t;

/* ---- "atrium.group/1" (host side): keep the handles of a room on one media loop. ---------------
 * The host runs `media.threads` media loops and puts a handle's PeerConnection on one of them when
 * the handle's first PeerConnection is set up (the client's offer, or the plugin's); the handle
 * stays on that loop while it lives. Handles a plugin puts in one group share a loop: the group
 * takes its loop from its first member that needs one (the loop that member already has, else the
 * loop with the fewest handles), and holds it while it has members. A handle placed before it
 * joined its group moves to the group's loop if its PeerConnection is still unanswered (the
 * client's offer came with the join, and the plugin answers after set_group); otherwise it keeps
 * its loop, and relays between it and the group go through the queue of "Media from any thread".
 * Rationale: within a loop a relay is a call on the sender's buffer; between loops it is a copy and
 * a queue. The plugin knows which handles exchange media (a room) and says so once, before their
 * offers, rather than the host guessing from traffic after the PeerConnections are placed. */
#define ATRIUM_EXT_GROUP "atrium.group/1"

typedef struct atrium_host_group {
    uint32_t struct_size;
    /* [any & live handle] Put `handle` in the plugin's group `group`, a number the plugin chooses
     * (a room id; groups of different plugins never meet); 0 takes it out of any group. */
    atrium_status_t (*ATRIUM_NULLABLE set_group)(const atrium_host_t *host, atrium_handle_t *handle, uint64_t group);
    /* [any & live handle] The index (0 .. media.threads-1) of the loop the handle lives on, or -1
     * while it has never had a PeerConnection; ATRIUM_ERR_NOT_FOUND for a handle that is gone. */
    int32_t (*ATRIUM_NULLABLE media_loop)(const atrium_host_t *host, atrium_handle_t *handle);
} atrium_host_group_t;

/* ---- "atrium.bandwidth/1" (both sides): what the host may send one handle's PeerConnection. ------
 * When a PeerConnection negotiated transport-wide congestion control (the transport-cc header
 * extension on what the host sends), the host numbers every packet it sends there, reads the
 * peer's transport feedback and keeps a send-side bandwidth estimate (delay- and loss-based, as
 * Google Congestion Control). The plugin decides what to send under it (a simulcast layer, a
 * temporal layer, pausing video); the host does not drop media on its own.
 * Rationale: only the plugin knows which of its streams matter more (screen share over camera,
 * audio over video), and only the host sees every packet that leaves and the feedback on it.
 * A path that carries more than the plugin sends is found by probing: the plugin says how much it
 * would send if it could (`set_desired`), and while the estimate is under that the host sends short
 * bursts of retransmission-stream filler (RFC 4588) and raises the estimate when they arrive well.
 * Without RTX negotiated on a video section the host cannot probe, and the estimate only follows
 * what the plugin sends. */
#define ATRIUM_EXT_BANDWIDTH "atrium.bandwidth/1"

typedef struct atrium_host_bandwidth {
    uint32_t struct_size;
    /* [any & live handle] The estimate in bits per second; 0 while there is none (no transport-cc
     * on this PeerConnection, or no feedback yet). */
    uint64_t (*ATRIUM_NULLABLE estimate)(const atrium_host_t *host, const atrium_handle_t *handle);
    /* [any & live handle] What the plugin would send the handle if the path allowed, bits per
     * second; the host probes toward it while its estimate is lower. 0 (the start) stops probing. */
    atrium_status_t (*ATRIUM_NULLABLE set_desired)(const atrium_host_t *host, const atrium_handle_t *handle,
                                    uint64_t bitrate);
} atrium_host_bandwidth_t;

typedef struct atrium_plugin_bandwidth {
    uint32_t struct_size;
    /* [media] The estimate for `handle` moved by 5 % or more (or is the first): bits per second. */
    void (*ATRIUM_NULLABLE estimate_changed)(const atrium_plugin_t *plugin, atrium_handle_t *handle, uint64_t bitrate);
} atrium_plugin_bandwidth_t;

#if defined(__clang__)
#pragma clang assume_nonnull end
#pragma clang diagnostic pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* ATRIUM_PLUGIN_H */
