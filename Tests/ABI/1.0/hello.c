/*
 * hello.c: the example Atrium plugin in plain C11, built against atrium_plugin.h alone.
 *
 * Requests (the "body" of a Janus API "message"):
 *   {"request":"hello","name":"Ada"}
 *       -> synchronous reply {"hello":"greeting","text":"Hello, Ada!"}
 *   {"request":"later","name":"Ada","delay_ms":100}
 *       -> "ack" now, then an event {"hello":"later","text":"Hello later, Ada!"} carrying the same
 *          transaction after delay_ms (0..5000, default 100)
 *   anything else, or a missing/invalid name or delay_ms
 *       -> synchronous reply {"hello":"error","error":"..."}
 * Configuration (the plugin's "config" object): {"greeting":"Hello"}; no other key.
 * Admin handle_info shows {"requests":N} for a handle; /metrics shows atrium_hello_requests_total.
 *
 * Delayed events use the host's "atrium.timer/1" extension: its callback runs on this plugin's
 * [control] context, serialized with handle_destroyed, so a pending event is either sent while the
 * handle is still valid or cancelled in handle_destroyed; the plugin never names a handle after
 * handle_destroyed returned, and needs no lock and no thread of its own.
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -fvisibility=hidden -shared -fPIC \
 *      -I Sources/PluginAPI/include Plugins/Examples/hello-c/hello.c -ljansson \
 *      -o .build/c-plugins/libatrium_hello.so
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "atrium_plugin.h"

#define HELLO_ID "atrium.plugin.hello"
#define HELLO_DEFAULT_GREETING "Hello"
#define HELLO_MAX_GREETING_BYTES 64
#define HELLO_MAX_NAME_BYTES 256
#define HELLO_DEFAULT_DELAY_MS 100
#define HELLO_MAX_DELAY_MS 5000
/* Pending "later" events one handle may have at a time. */
#define HELLO_MAX_PENDING 16

typedef struct hello_plugin hello_plugin_t;
typedef struct hello_handle hello_handle_t;
typedef struct hello_pending hello_pending_t;

/* One "later" event waiting for its timer. Owned by its handle record; touched only on [control]. */
struct hello_pending {
    hello_handle_t *owner;
    uint64_t timer_id;
    char *transaction;   /* our copy: the host's string was borrowed until handle_message returned */
    char *event_json;    /* the event, serialized when the request came */
    hello_pending_t *next;
};

/* What the plugin keeps per handle, in atrium_handle_t.plugin_data. Touched only on [control]. */
struct hello_handle {
    atrium_handle_t *handle;  /* host-owned; valid until handle_destroyed returns */
    uint64_t requests;
    unsigned pending_count;
    hello_pending_t *pending;
    hello_handle_t *prev, *next;
};

/* The instance. `table` is what create returns; its plugin_data points back here. */
struct hello_plugin {
    atrium_plugin_t table;
    const atrium_host_t *host;      /* the host's table, passed back on every host call */
    atrium_host_t host_fns;         /* our zero-extended copy, to read function pointers from */
    atrium_host_timer_t timer;      /* zero-extended copy of the "atrium.timer/1" table */
    char *greeting;
    hello_handle_t *handles;        /* [control] only */
    atomic_uint_fast64_t requests_total;  /* read by metrics scrapes on [any] thread */
};

/* ---- Helpers ------------------------------------------------------------------------------ */

/* Copies a table of the other side into a zeroed local: min(its struct_size, our sizeof) bytes,
 * so fields an older producer did not have read as zero/NULL. */
static void hello_copy_table(void *local, size_t local_size, const void *table) {
    uint32_t declared;
    memcpy(&declared, table, sizeof declared);
    memset(local, 0, local_size);
    memcpy(local, table, declared < local_size ? declared : local_size);
}

static char *hello_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

static void hello_set_err(char *err, size_t err_cap, const char *message) {
    if (err && err_cap > 0) snprintf(err, err_cap, "%s", message);
}

static hello_plugin_t *hello_from(const atrium_plugin_t *plugin) {
    return (hello_plugin_t *)plugin->plugin_data;
}

static void hello_log(hello_plugin_t *self, int32_t level, const char *message) {
    if (self->host_fns.log) self->host_fns.log(self->host, level, message);
}

static const char *hello_type_name(const json_t *value) {
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* ---- Replies ------------------------------------------------------------------------------ */

/* Sends `object` (consumed) as the synchronous reply. */
static int32_t hello_reply(const atrium_reply_t *reply, json_t *object) {
    atrium_reply_t r;
    hello_copy_table(&r, sizeof r, reply);
    char *text = object ? json_dumps(object, JSON_COMPACT) : NULL;
    json_decref(object);
    if (!text || !r.set_reply || r.set_reply(reply, text, strlen(text)) != ATRIUM_OK) {
        free(text);
        if (r.set_error) r.set_error(reply, "hello: could not build the reply");
        return ATRIUM_MESSAGE_ERROR;
    }
    free(text);
    return ATRIUM_MESSAGE_REPLY;
}

/* An application error: an ordinary reply, {"hello":"error","error":"..."}. */
static int32_t hello_reply_error(const atrium_reply_t *reply, const char *message) {
    return hello_reply(reply, json_pack("{s:s, s:s}", "hello", "error", "error", message));
}

/* ---- Pending events ----------------------------------------------------------------------- */

static void hello_pending_free(hello_pending_t *p) {
    free(p->transaction);
    free(p->event_json);
    free(p);
}

/* Unlinks `p` from its handle's list (does not free it). */
static void hello_pending_unlink(hello_pending_t *p) {
    hello_handle_t *owner = p->owner;
    for (hello_pending_t **link = &owner->pending; *link; link = &(*link)->next) {
        if (*link == p) {
            *link = p->next;
            owner->pending_count--;
            return;
        }
    }
}

/* [control] The timer of a pending event fired: send it once, then forget it. */
static void hello_timer_fired(const atrium_plugin_t *plugin, void *user_data) {
    hello_plugin_t *self = hello_from(plugin);
    hello_pending_t *p = user_data;
    if (!p) return;
    /* The timer repeats until cancelled; this one is one-shot. */
    if (self->timer.cancel) self->timer.cancel(self->host, p->timer_id);
    hello_pending_unlink(p);
    /* handle_destroyed cancels every pending timer of its handle, so the handle is still valid
     * here. It may already be closing (detach is on its way): the host then answers NOT_FOUND and
     * drops the event, which is fine. */
    atrium_status_t status = self->host_fns.push_event
        ? self->host_fns.push_event(self->host, p->owner->handle, p->transaction,
                                    p->event_json, strlen(p->event_json), NULL, 0)
        : ATRIUM_ERR_UNSUPPORTED;
    if (status == ATRIUM_ERR_NOT_FOUND) {
        hello_log(self, ATRIUM_LOG_DEBUG, "handle closing; later event dropped");
    } else if (status != ATRIUM_OK) {
        char line[96];
        snprintf(line, sizeof line, "push_event failed with status %" PRId32, status);
        hello_log(self, ATRIUM_LOG_WARNING, line);
    }
    hello_pending_free(p);
}

/* [control] Cancels and frees every pending event of a handle. */
static void hello_cancel_pending(hello_plugin_t *self, hello_handle_t *h) {
    while (h->pending) {
        hello_pending_t *p = h->pending;
        h->pending = p->next;
        if (self->timer.cancel) self->timer.cancel(self->host, p->timer_id);
        hello_pending_free(p);
    }
    h->pending_count = 0;
}

/* ---- Requests ----------------------------------------------------------------------------- */

/* Reads body.name: a non-empty string of at most HELLO_MAX_NAME_BYTES bytes, or NULL. */
static const char *hello_name(const json_t *body) {
    const json_t *name = json_object_get(body, "name");
    if (!json_is_string(name)) return NULL;
    size_t length = json_string_length(name);
    if (length == 0 || length > HELLO_MAX_NAME_BYTES) return NULL;
    /* An embedded NUL would cut the text short; refuse it. */
    if (strlen(json_string_value(name)) != length) return NULL;
    return json_string_value(name);
}

static int32_t hello_request_hello(hello_plugin_t *self, const json_t *body, const atrium_reply_t *reply) {
    const char *name = hello_name(body);
    if (!name) return hello_reply_error(reply, "name should be a non-empty string of at most 256 bytes");
    char text[HELLO_MAX_GREETING_BYTES + HELLO_MAX_NAME_BYTES + 8];
    snprintf(text, sizeof text, "%s, %s!", self->greeting, name);
    return hello_reply(reply, json_pack("{s:s, s:s}", "hello", "greeting", "text", text));
}

static int32_t hello_request_later(hello_plugin_t *self, hello_handle_t *h, const char *transaction,
                                   const json_t *body, const atrium_reply_t *reply) {
    const char *name = hello_name(body);
    if (!name) return hello_reply_error(reply, "name should be a non-empty string of at most 256 bytes");
    json_int_t delay = HELLO_DEFAULT_DELAY_MS;
    const json_t *delay_value = json_object_get(body, "delay_ms");
    if (delay_value) {
        if (!json_is_integer(delay_value) || json_integer_value(delay_value) < 0 ||
            json_integer_value(delay_value) > HELLO_MAX_DELAY_MS) {
            return hello_reply_error(reply, "delay_ms should be an integer from 0 to 5000");
        }
        delay = json_integer_value(delay_value);
    }
    if (h->pending_count >= HELLO_MAX_PENDING) {
        return hello_reply_error(reply, "too many pending later requests on this handle (limit 16)");
    }

    char text[HELLO_MAX_GREETING_BYTES + HELLO_MAX_NAME_BYTES + 16];
    snprintf(text, sizeof text, "%s later, %s!", self->greeting, name);
    json_t *event = json_pack("{s:s, s:s}", "hello", "later", "text", text);
    hello_pending_t *p = calloc(1, sizeof *p);
    if (p) {
        p->owner = h;
        p->transaction = hello_strdup(transaction);
        p->event_json = event ? json_dumps(event, JSON_COMPACT) : NULL;
    }
    json_decref(event);
    atrium_reply_t r;
    hello_copy_table(&r, sizeof r, reply);
    if (!p || !p->transaction || !p->event_json) {
        if (p) hello_pending_free(p);
        if (r.set_error) r.set_error(reply, "hello: out of memory");
        return ATRIUM_MESSAGE_ERROR;
    }
    /* The host's timer needs an interval of at least 1 ms. */
    p->timer_id = self->timer.schedule(self->host, delay > 0 ? (uint32_t)delay : 1, hello_timer_fired, p);
    if (p->timer_id == 0) {
        hello_pending_free(p);
        if (r.set_error) r.set_error(reply, "hello: the host refused to schedule a timer");
        return ATRIUM_MESSAGE_ERROR;
    }
    p->next = h->pending;
    h->pending = p;
    h->pending_count++;

    char hint[64];
    snprintf(hint, sizeof hint, "the greeting follows in %d ms", (int)delay);
    if (r.set_hint) r.set_hint(reply, hint);
    return ATRIUM_MESSAGE_ACK;
}

/* ---- The plugin table --------------------------------------------------------------------- */

static atrium_status_t hello_init(const atrium_plugin_t *plugin, const char *config_json, size_t config_len,
                                  char *err, size_t err_cap) {
    hello_plugin_t *self = hello_from(plugin);
    json_error_t parse_error;
    json_t *config = json_loadb(config_json, config_len, 0, &parse_error);
    if (!json_is_object(config)) {
        char message[256];
        snprintf(message, sizeof message, "config is not a JSON object: %s",
                 config ? hello_type_name(config) : parse_error.text);
        hello_set_err(err, err_cap, message);
        json_decref(config);
        return ATRIUM_ERR_INVALID_ARGUMENT;
    }
    const char *greeting = HELLO_DEFAULT_GREETING;
    const char *key;
    json_t *value;
    json_object_foreach(config, key, value) {
        char message[256];
        if (strcmp(key, "greeting") != 0) {
            snprintf(message, sizeof message, "config.%.64s: unknown key; expected: greeting", key);
            hello_set_err(err, err_cap, message);
            json_decref(config);
            return ATRIUM_ERR_INVALID_ARGUMENT;
        }
        size_t length = json_is_string(value) ? json_string_length(value) : 0;
        if (length == 0 || length > HELLO_MAX_GREETING_BYTES || strlen(json_string_value(value)) != length) {
            snprintf(message, sizeof message,
                     "config.greeting: expected a non-empty string of at most %d bytes, found %s",
                     HELLO_MAX_GREETING_BYTES, json_is_string(value) ? "an empty or too long string" : hello_type_name(value));
            hello_set_err(err, err_cap, message);
            json_decref(config);
            return ATRIUM_ERR_INVALID_ARGUMENT;
        }
        greeting = json_string_value(value);
    }
    char *copy = hello_strdup(greeting);
    json_decref(config);
    if (!copy) {
        hello_set_err(err, err_cap, "out of memory");
        return ATRIUM_ERR_NO_MEMORY;
    }
    free(self->greeting);
    self->greeting = copy;

    char line[128];
    snprintf(line, sizeof line, "hello ready, greeting \"%s\"", self->greeting);
    hello_log(self, ATRIUM_LOG_INFO, line);
    return ATRIUM_OK;
}

static void hello_destroy(const atrium_plugin_t *plugin) {
    hello_plugin_t *self = hello_from(plugin);
    /* The host destroyed every handle first and cancelled our timers; free whatever is left. */
    while (self->handles) {
        hello_handle_t *h = self->handles;
        self->handles = h->next;
        hello_cancel_pending(self, h);
        free(h);
    }
    free(self->greeting);
    free(self);  /* the table is part of self: gone once destroy returns */
}

static atrium_status_t hello_handle_created(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                            char *err, size_t err_cap) {
    hello_plugin_t *self = hello_from(plugin);
    hello_handle_t *h = calloc(1, sizeof *h);
    if (!h) {
        hello_set_err(err, err_cap, "out of memory");
        return ATRIUM_ERR_NO_MEMORY;
    }
    h->handle = handle;
    h->next = self->handles;
    if (self->handles) self->handles->prev = h;
    self->handles = h;
    handle->plugin_data = h;
    return ATRIUM_OK;
}

static void hello_handle_destroyed(const atrium_plugin_t *plugin, atrium_handle_t *handle) {
    hello_plugin_t *self = hello_from(plugin);
    hello_handle_t *h = handle->plugin_data;
    if (!h) return;
    /* After this returns the handle pointer is dead (the host may even reuse the address for a new
     * handle), so every pending event of it is cancelled here, never sent later. */
    hello_cancel_pending(self, h);
    if (h->prev) h->prev->next = h->next; else self->handles = h->next;
    if (h->next) h->next->prev = h->prev;
    handle->plugin_data = NULL;
    free(h);
}

static int32_t hello_handle_message(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                    const char *transaction, const char *body_json, size_t body_len,
                                    const char *jsep_json, size_t jsep_len, const atrium_reply_t *reply) {
    (void)jsep_json;
    (void)jsep_len;
    hello_plugin_t *self = hello_from(plugin);
    hello_handle_t *h = handle->plugin_data;
    if (!h) {
        atrium_reply_t r;
        hello_copy_table(&r, sizeof r, reply);
        if (r.set_error) r.set_error(reply, "hello: unknown handle");
        return ATRIUM_MESSAGE_ERROR;
    }
    h->requests++;
    atomic_fetch_add_explicit(&self->requests_total, 1, memory_order_relaxed);

    json_t *body = json_loadb(body_json, body_len, 0, NULL);
    int32_t outcome;
    const json_t *request = json_object_get(body, "request");
    if (!json_is_string(request)) {
        outcome = hello_reply_error(reply, "request should be a string");
    } else if (strcmp(json_string_value(request), "hello") == 0) {
        outcome = hello_request_hello(self, body, reply);
    } else if (strcmp(json_string_value(request), "later") == 0) {
        outcome = hello_request_later(self, h, transaction, body, reply);
    } else {
        char message[128];
        snprintf(message, sizeof message, "unknown request '%.64s'", json_string_value(request));
        outcome = hello_reply_error(reply, message);
    }
    json_decref(body);
    return outcome;
}

static atrium_status_t hello_query_handle(const atrium_plugin_t *plugin, atrium_handle_t *handle,
                                          char *out, size_t out_cap) {
    (void)plugin;
    const hello_handle_t *h = handle->plugin_data;
    if (!h) return ATRIUM_ERR_NOT_FOUND;
    int n = snprintf(out, out_cap, "{\"requests\":%" PRIu64 "}", h->requests);
    if (n < 0) return ATRIUM_ERR_INTERNAL;
    return (size_t)n < out_cap ? ATRIUM_OK : ATRIUM_ERR_BUFFER_TOO_SMALL;
}

/* ---- Extensions --------------------------------------------------------------------------- */

/* [any] atrium.metrics/1: one counter, read without blocking. */
static void hello_collect(const atrium_plugin_t *plugin, const atrium_metrics_writer_t *writer) {
    hello_plugin_t *self = hello_from(plugin);
    atrium_metrics_writer_t w;
    hello_copy_table(&w, sizeof w, writer);
    if (!w.write) return;
    char text[256];
    int n = snprintf(text, sizeof text,
                     "# HELP atrium_hello_requests_total Messages handled by the hello plugin.\n"
                     "# TYPE atrium_hello_requests_total counter\n"
                     "atrium_hello_requests_total %" PRIuFAST64 "\n",
                     (uint_fast64_t)atomic_load_explicit(&self->requests_total, memory_order_relaxed));
    if (n > 0 && (size_t)n < sizeof text) w.write(writer, text, (size_t)n);
}

static const atrium_plugin_metrics_t hello_metrics = {
    .struct_size = sizeof(atrium_plugin_metrics_t),
    .collect = hello_collect,
};

static const void *hello_get_extension(const atrium_plugin_t *plugin, const char *id) {
    (void)plugin;
    if (strcmp(id, ATRIUM_EXT_METRICS) == 0) return &hello_metrics;
    return NULL;
}

/* ---- Entry -------------------------------------------------------------------------------- */

static const atrium_plugin_t *hello_create(const atrium_host_t *host, char *err, size_t err_cap) {
    atrium_host_t fns;
    hello_copy_table(&fns, sizeof fns, host);
    if (fns.abi_version.major != ATRIUM_ABI_VERSION_MAJOR) {
        hello_set_err(err, err_cap, "the host speaks another plugin ABI major version");
        return NULL;
    }
    const atrium_host_timer_t *timer_table =
        fns.get_extension ? fns.get_extension(host, ATRIUM_EXT_TIMER) : NULL;
    atrium_host_timer_t timer;
    if (timer_table) hello_copy_table(&timer, sizeof timer, timer_table);
    if (!timer_table || !timer.schedule || !timer.cancel) {
        hello_set_err(err, err_cap, "the host offers no " ATRIUM_EXT_TIMER " extension");
        return NULL;
    }
    if (!fns.push_event) {
        hello_set_err(err, err_cap, "the host table has no push_event");
        return NULL;
    }
    hello_plugin_t *self = calloc(1, sizeof *self);
    if (!self) {
        hello_set_err(err, err_cap, "out of memory");
        return NULL;
    }
    self->host = host;
    self->host_fns = fns;
    self->timer = timer;
    atomic_init(&self->requests_total, 0);
    self->greeting = hello_strdup(HELLO_DEFAULT_GREETING);
    if (!self->greeting) {
        free(self);
        hello_set_err(err, err_cap, "out of memory");
        return NULL;
    }
    self->table = (atrium_plugin_t){
        .struct_size = sizeof(atrium_plugin_t),
        .abi_version = ATRIUM_ABI_VERSION_INIT,
        .plugin_data = self,
        .init = hello_init,
        .destroy = hello_destroy,
        .get_extension = hello_get_extension,
        .handle_created = hello_handle_created,
        .handle_destroyed = hello_handle_destroyed,
        .handle_message = hello_handle_message,
        .query_handle = hello_query_handle,
    };
    return &self->table;
}

static const atrium_plugin_entry_t hello_entry = {
    .struct_size = sizeof(atrium_plugin_entry_t),
    .abi_version = ATRIUM_ABI_VERSION_INIT,
    .id = HELLO_ID,
    .name = "Hello",
    .description = "Example plugin in C: synchronous and delayed greetings.",
    .author = "The Atrium authors",
    .version_string = "0.1.0",
    .version = 1,
    .create = hello_create,
};

/* The library's only exported symbol. */
__attribute__((visibility("default"))) const atrium_plugin_entry_t *atrium_plugin_entry(void);

const atrium_plugin_entry_t *atrium_plugin_entry(void) {
    return &hello_entry;
}
