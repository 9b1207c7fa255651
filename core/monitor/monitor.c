/*
 * QMP monitors (see monitor.h).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include <blockd/error.h>

#include "json/json-stream.h"
#include "json/json-writer.h"
#include "monitor/monitor.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "qmp/qmp-event.h"
#include "util/trace-points.h"

#define READ_CHUNK 65536

struct BdMonitor {
    BdChardev *chr;
    bool pretty;

    /* the connected client, if any */
    bool has_client;
    int in_fd;
    int out_fd;
    guint in_source;
    guint out_source;
    BdJsonStream *stream;
    GQueue *requests;       /* of Request: parsed, not run yet */
    GString *outbuf;
    BdQmpSession session;
    bool feeding;           /* inside bd_json_stream_feed() */
    bool running;           /* inside client_run() */
    bool dead;              /* the client must go once we can free it */
};

/* One message from the client, as the JSON streamer handed it on. */
typedef struct Request {
    JsonNode *value;
    GError *err;
} Request;

static GPtrArray *monitors;

static void client_close(BdMonitor *mon);
static void client_update_watches(BdMonitor *mon);

/* Queue @obj as one message: text, then "\r\n"; newlines become CRLF. */
static void client_queue(BdMonitor *mon, JsonObject *obj)
{
    g_autofree char *text = bd_qmp_json_format_object(obj, mon->pretty);

    BD_TRACE(&bd_tp_qmp_reply, "chardev %s resp: %s",
             bd_chardev_id(mon->chr), text);
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(mon->outbuf, '\r');
        }
        g_string_append_c(mon->outbuf, *p);
    }
    g_string_append(mon->outbuf, "\r\n");
}

/* Write what we can without blocking; false if the client is gone. */
static bool client_write(BdMonitor *mon)
{
    while (mon->outbuf->len) {
        ssize_t n = write(mon->out_fd, mon->outbuf->str, mon->outbuf->len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            return false;
        }
        g_string_erase(mon->outbuf, 0, n);
    }
    return true;
}

/* Whether the client's state is in use further up the stack. */
static bool client_busy(BdMonitor *mon)
{
    return mon->feeding || mon->running;
}

/* Drop the client now, or as soon as the callback using it returns. */
static void client_kill(BdMonitor *mon)
{
    if (client_busy(mon)) {
        mon->dead = true;
    } else {
        client_close(mon);
    }
}

/*
 * After queueing output: send it, and apply the output bound.  Replies
 * stay near BD_MONITOR_OUTPUT_HIGH (commands wait while more is pending),
 * so only events pile up to BD_MONITOR_OUTPUT_MAX, for a client that
 * never reads.
 */
static void client_flush(BdMonitor *mon)
{
    if (!client_write(mon) || mon->outbuf->len > BD_MONITOR_OUTPUT_MAX) {
        client_kill(mon);
        return;
    }
    if (!client_busy(mon)) {
        client_update_watches(mon);
    }
}

static void client_run(BdMonitor *mon);

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    BdMonitor *mon = opaque;

    mon->out_source = 0;
    if (!client_write(mon)) {
        client_kill(mon);
        return G_SOURCE_REMOVE;
    }
    /* the client caught up: run what it sent meanwhile */
    client_run(mon);
    if (mon->has_client && !client_busy(mon)) {
        client_update_watches(mon);
    }
    return G_SOURCE_REMOVE;
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque);

/*
 * Read while every command read so far has run (which it does while the
 * client keeps up with its replies); wait for the fd to become writable
 * while output is pending.
 */
static bool client_wants_input(BdMonitor *mon)
{
    return !mon->dead && g_queue_is_empty(mon->requests) &&
           mon->outbuf->len < BD_MONITOR_OUTPUT_HIGH;
}

static void client_update_watches(BdMonitor *mon)
{
    /* a backend without input (ringbuf, file without 'in') is never read */
    bool want_in = mon->in_fd >= 0 && client_wants_input(mon);
    bool want_out = mon->outbuf->len > 0;

    if (want_in && !mon->in_source) {
        mon->in_source = g_unix_fd_add(mon->in_fd, G_IO_IN | G_IO_HUP |
                                       G_IO_ERR, client_readable, mon);
    } else if (!want_in && mon->in_source) {
        g_source_remove(mon->in_source);
        mon->in_source = 0;
    }
    if (want_out && !mon->out_source) {
        mon->out_source = g_unix_fd_add(mon->out_fd, G_IO_OUT | G_IO_ERR,
                                        client_writable, mon);
    } else if (!want_out && mon->out_source) {
        g_source_remove(mon->out_source);
        mon->out_source = 0;
    }
}

static void request_free(Request *req)
{
    if (req->value) {
        json_node_unref(req->value);
    }
    if (req->err) {
        g_error_free(req->err);
    }
    g_free(req);
}

/* The streamer's callback: queue the message for client_run(). */
static void client_message(void *opaque, JsonNode *value, GError *err)
{
    BdMonitor *mon = opaque;
    Request *req = g_new(Request, 1);

    req->value = value;
    req->err = err;
    g_queue_push_tail(mon->requests, req);
}

static void client_dispatch(BdMonitor *mon, Request *req)
{
    g_autoptr(JsonObject) rsp = NULL;

    if (BD_TRACE_ENABLED(&bd_tp_qmp_command)) {
        g_autofree char *text = req->value ?
                                json_to_string(req->value, false) :
                                g_strdup(req->err->message);

        bd_trace_emit(&bd_tp_qmp_command, "chardev %s req: %s",
                      bd_chardev_id(mon->chr), text);
    }
    rsp = bd_qmp_dispatch(&mon->session, req->value, req->err);
    if (rsp) {
        client_queue(mon, rsp);
        client_flush(mon);
    }
}

/*
 * Run the queued commands, in order, while less than
 * BD_MONITOR_OUTPUT_HIGH of output is pending: a client that sends many
 * commands and reads late holds up its own commands (and, its input no
 * longer read, its socket), never loses one.  Commands that run the main
 * loop (draining an export) do not start the next one from inside.
 */
static void client_run(BdMonitor *mon)
{
    if (!mon->has_client || client_busy(mon)) {
        return;
    }
    mon->running = true;
    while (!mon->dead && !g_queue_is_empty(mon->requests) &&
           mon->outbuf->len < BD_MONITOR_OUTPUT_HIGH) {
        Request *req = g_queue_pop_head(mon->requests);

        client_dispatch(mon, req);
        request_free(req);
    }
    mon->running = false;
    if (mon->dead) {
        client_close(mon);
    }
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    BdMonitor *mon = opaque;
    char buf[READ_CHUNK];
    ssize_t n;

    n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /* EOF or error: the client is gone */
        mon->in_source = 0;
        client_kill(mon);
        return G_SOURCE_REMOVE;
    }
    mon->feeding = true;
    bd_json_stream_feed(mon->stream, buf, (size_t)n);
    mon->feeding = false;
    /* this source stays only while the client may send more */
    mon->in_source = 0;
    client_run(mon);
    if (!mon->has_client) {
        return G_SOURCE_REMOVE;
    }
    if (client_wants_input(mon)) {
        mon->in_source = g_source_get_id(g_main_current_source());
    }
    if (!client_busy(mon)) {
        client_update_watches(mon);
    }
    return mon->in_source ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static JsonObject *greeting(bool oob)
{
    JsonObject *rsp = json_object_new();
    JsonObject *qmp = json_object_new();
    JsonArray *caps = json_array_new();

    json_object_set_member(qmp, "version", bd_qmp_version_info());
    if (oob) {
        json_array_add_string_element(caps, "oob");
    }
    json_object_set_array_member(qmp, "capabilities", caps);
    json_object_set_object_member(rsp, "QMP", qmp);
    return rsp;
}

static void client_open(void *opaque, int in_fd, int out_fd)
{
    BdMonitor *mon = opaque;
    /* QEMU offers out-of-band execution only where its I/O thread can
     * serve the chardev */
    bool oob = bd_chardev_supports_oob(mon->chr);
    g_autoptr(JsonObject) hello = greeting(oob);

    BD_TRACE(&bd_tp_monitor_accept, "chardev %s", bd_chardev_id(mon->chr));
    mon->has_client = true;
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->stream = bd_json_stream_new(client_message, mon);
    mon->requests = g_queue_new();
    mon->outbuf = g_string_new(NULL);
    mon->session = (BdQmpSession) { .oob_offered = oob };
    mon->dead = false;
    client_queue(mon, hello);
    client_flush(mon);
}

static void client_close(BdMonitor *mon)
{
    if (!mon->has_client) {
        return;
    }
    BD_TRACE(&bd_tp_monitor_close, "chardev %s", bd_chardev_id(mon->chr));
    if (mon->in_source) {
        g_source_remove(mon->in_source);
        mon->in_source = 0;
    }
    if (mon->out_source) {
        g_source_remove(mon->out_source);
        mon->out_source = 0;
    }
    bd_json_stream_free(mon->stream);
    mon->stream = NULL;
    g_queue_free_full(mon->requests, (GDestroyNotify)request_free);
    mon->requests = NULL;
    g_string_free(mon->outbuf, true);
    mon->outbuf = NULL;
    mon->has_client = false;
    mon->dead = false;
    bd_chardev_disconnect(mon->chr);
}

/* The monitor's event sink: a negotiated client gets every event. */
static void monitor_event(JsonObject *event, void *opaque)
{
    BdMonitor *mon = opaque;

    if (mon->has_client && !mon->dead && mon->session.negotiated) {
        client_queue(mon, event);
        client_flush(mon);
    }
}

static const BdChardevFrontendOps monitor_frontend = {
    .open = client_open,
};

BdMonitor *bd_monitor_new(const char *chardev_id, bool pretty,
                          GError **errp)
{
    BdChardev *chr = bd_chardev_find(chardev_id);
    BdMonitor *mon;

    if (!chr) {
        bd_error_setg(errp, "chardev \"%s\" not found", chardev_id);
        return NULL;
    }
    if (bd_chardev_has_frontend(chr)) {
        bd_error_setg(errp, "Device '%s' is in use", chardev_id);
        return NULL;
    }
    /* QEMU never opens a udp chardev to its monitor: it would not greet */
    if (!bd_chardev_can_serve_monitor(chr)) {
        bd_error_setg(errp, "a QMP monitor on chardev '%s' (a udp chardev) "
                      "is not supported by blockd", chardev_id);
        return NULL;
    }
    mon = g_new0(BdMonitor, 1);
    mon->chr = chr;
    mon->pretty = pretty;
    if (!monitors) {
        monitors = g_ptr_array_new();
    }
    g_ptr_array_add(monitors, mon);
    bd_qmp_event_add_sink(monitor_event, mon);
    /* may call client_open at once when a client is already waiting */
    bd_chardev_attach(chr, &monitor_frontend, mon, NULL);
    return mon;
}

void bd_monitor_free(BdMonitor *mon)
{
    if (!mon) {
        return;
    }
    client_close(mon);
    bd_chardev_detach(mon->chr);
    g_ptr_array_remove(monitors, mon);
    bd_qmp_event_remove_sink(monitor_event, mon);
    g_free(mon);
}

void bd_monitors_free_all(void)
{
    while (monitors && monitors->len) {
        bd_monitor_free(g_ptr_array_index(monitors, monitors->len - 1));
    }
    g_clear_pointer(&monitors, g_ptr_array_unref);
}

void bd_monitors_flush(int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (guint i = 0; monitors && i < monitors->len; i++) {
        BdMonitor *mon = g_ptr_array_index(monitors, i);

        while (mon->has_client && mon->outbuf->len) {
            struct pollfd pfd = { .fd = mon->out_fd, .events = POLLOUT };
            gint64 left = (deadline - g_get_monotonic_time()) / 1000;

            if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 ||
                !client_write(mon)) {
                break;
            }
        }
    }
}

