/*
 * libFuzzer target: the NBD server of the export-nbd plugin, from the
 * handshake to the transmission phase.
 *
 * Nothing here re-implements the server.  The first call brings the core
 * up in this process as the daemon's main() does (plugins discovered in
 * the build tree, schema, QMP commands) and runs real QMP commands
 * through the dispatcher: a raw node on a sparse file and
 * nbd-server-start on a unix socket, both in a private directory, a
 * writable export of that node, and a read-only export of a null-co node
 * in an IOThread.  Each input is then
 * sent by a real client socket to the real listening socket, with the
 * server's replies read and thrown away, until the server hangs up.
 *
 * Input layout: byte 0 selects how the rest is sent (see the mode bits below);
 * the remaining bytes are the client's side of the conversation.  Half
 * the modes put a canned, valid handshake in front of those bytes, so
 * that mutations reach the request parser without first having to
 * rediscover the negotiation.
 *
 * After each input the server must have closed its side (a hang is
 * reported through abort() after a generous bound), have freed the
 * connection (the process holds no more sockets than before),
 * and still serve its exports.  Leaks show under LeakSanitizer.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/blockd.h>

#include "aio/aio-context.h"
#include "blockd-config.h"
#include "core-init.h"
#include "block/block.h"
#include "export/export.h"
#include "aio/main-loop.h"
#include "object/object.h"
#include "plugin/plugin-loader.h"
#include "plugin/plugin-schema.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"
#include "util/trace-points.h"

/* Longest time one input may take before it counts as a hang. */
#define HANG_BOUND_NS (8 * G_GINT64_CONSTANT(1000000000))

/* The image: a sparse file in the private directory. */
#define IMAGE_SIZE (64 * 1024 * 1024)

/* The exports the canned handshakes ask for. */
#define EXPORT_RW "fz"
#define EXPORT_RO "ro"

/* Wire values the canned handshakes use (see specs/nbd.txt). */
#define OPTS_MAGIC UINT64_C(0x49484156454f5054)        /* IHAVEOPT */
#define FLAG_C_FIXED_NEWSTYLE 1u
#define FLAG_C_NO_ZEROES 2u
#define OPT_EXPORT_NAME 1u
#define OPT_GO 7u
#define OPT_STRUCTURED_REPLY 8u
#define OPT_SET_META_CONTEXT 10u
#define INFO_BLOCK_SIZE 3u

/*
 * Byte 0 of an input:
 *   bit 0      put a canned handshake in front of the rest
 *   bits 1-2   which one (see add_handshake())
 *   bit 3      ask for the read-only export instead of the writable one
 *   bits 4-5   how the bytes are cut up: all at once, or in pieces of
 *              1, 7 or 61 bytes, each sent when the loop runs again,
 *              so that the server sees its input arrive in fragments;
 *   bits 6-7   remove the writable export with block-export-del
 *              mode=hard (cutting its clients off) during the
 *              conversation: 0 never, 1 once the first piece is out
 *              (usually still negotiating), 2 once 4 KiB of replies
 *              came back (usually with requests in flight), 3 as a
 *              client that does not read: nothing is read until the
 *              loop has nothing left to do (the server waits for the
 *              client), then the export is removed (the server must not
 *              wait for such a client to shut down) and the rest read.  The export is added
 *              back after the input.
 */
enum {
    MODE_HANDSHAKE = 1u << 0,
    MODE_HS_SHIFT = 1,
    MODE_READ_ONLY = 1u << 3,
    MODE_CHUNK_SHIFT = 4,
    MODE_DELETE_SHIFT = 6,
};

/*
 * When bits 6-7 remove the export: bytes of replies seen (-1: never,
 * DELETE_LAZY: the client that does not read).
 */
#define DELETE_LAZY INT64_MAX
static const int64_t delete_after[] = { -1, 0, 4096, DELETE_LAZY };

static const size_t chunk_sizes[] = { SIZE_MAX, 1, 7, 61 };

static BdAioContext *main_ctx;
static char *work_dir;
static char *socket_path;
static char *image_path;
static int image_fd = -1;     /* to empty the image between inputs */
static int baseline_sockets;

/* --- set-up -------------------------------------------------------------- */

static void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fuzz-nbd-server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* Run one QMP command through the daemon's dispatcher; die on error. */
static void qmp(const char *json)
{
    BdQmpSession session = { .negotiated = true };
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonObject *rsp;

    if (!json_parser_load_from_data(parser, json, -1, &err)) {
        die("bad QMP text %s: %s", json, err->message);
    }
    rsp = bd_qmp_dispatch(&session, json_parser_get_root(parser), NULL);
    if (!rsp || json_object_has_member(rsp, "error")) {
        g_autofree char *text = NULL;

        if (rsp) {
            g_autoptr(JsonNode) node = json_node_init_object(
                json_node_alloc(), rsp);

            text = json_to_string(node, false);
        }
        die("%s failed: %s", json, text ? text : "(no reply)");
    }
    json_object_unref(rsp);
}

static void add_rw_export(void)
{
    qmp("{\"execute\": \"block-export-add\", \"arguments\": {"
        "\"type\": \"nbd\", \"id\": \"" EXPORT_RW "\", "
        "\"node-name\": \"fz-node\", \"name\": \"" EXPORT_RW "\", "
        "\"description\": \"fuzzing\", \"writable\": true}}");
}

/*
 * The sockets this process holds.  Only sockets: libFuzzer itself opens
 * pipes and files (its symbolizer, the corpus) as it goes.
 */
static int count_sockets(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    struct stat st;
    int n = 0;

    if (!d) {
        die("cannot list /proc/self/fd: %s", g_strerror(errno));
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.' &&
            fstat(atoi(de->d_name), &st) == 0 && S_ISSOCK(st.st_mode)) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void tear_down(void)
{
    /* what the daemon's exit does: exports, the server, nodes, plugins */
    bd_shutdown_run_notifiers();
    bd_objects_delete_all();
    bd_plugins_reset();
    if (socket_path) {
        unlink(socket_path);
    }
    if (image_fd >= 0) {
        close(image_fd);
    }
    if (image_path) {
        unlink(image_path);
    }
    if (work_dir) {
        rmdir(work_dir);
    }
    g_free(socket_path);
    g_free(image_path);
    g_free(work_dir);
}

static void set_up(void)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) dirs = NULL;
    const char *env = g_getenv("BLOCKD_PLUGIN_DIR");
    g_autofree char *start = NULL;
    g_autofree char *add = NULL;

    bd_trace_register_core();
    dirs = bd_plugin_dirs(env ? NULL : BLOCKD_BUILD_PLUGIN_DIR);
    bd_plugins_discover(dirs);
    if (!bd_core_init(&err)) {
        die("%s", err->message);
    }
    main_ctx = bd_aio_main_context();

    work_dir = g_dir_make_tmp("blockd-fuzz-nbd-XXXXXX", &err);
    if (!work_dir) {
        die("%s", err->message);
    }
    socket_path = g_build_filename(work_dir, "nbd.sock", NULL);
    atexit(tear_down);

    image_path = g_build_filename(work_dir, "image", NULL);
    image_fd = open(image_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (image_fd < 0 || ftruncate(image_fd, IMAGE_SIZE) < 0) {
        die("cannot create %s: %s", image_path, g_strerror(errno));
    }
    add = g_strdup_printf(
        "{\"execute\": \"blockdev-add\", \"arguments\": {"
        "\"driver\": \"raw\", \"node-name\": \"fz-node\", "
        "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}}",
        image_path);
    qmp(add);
    start = g_strdup_printf(
        "{\"execute\": \"nbd-server-start\", \"arguments\": {"
        "\"addr\": {\"type\": \"unix\", \"data\": {\"path\": \"%s\"}}}}",
        socket_path);
    qmp(start);
    add_rw_export();
    /* the read-only export runs in an IOThread, with a node of its own */
    qmp("{\"execute\": \"object-add\", \"arguments\": {"
        "\"qom-type\": \"iothread\", \"id\": \"io0\"}}");
    qmp("{\"execute\": \"blockdev-add\", \"arguments\": {"
        "\"driver\": \"null-co\", \"node-name\": \"io-node\", "
        "\"size\": 67108864, \"read-zeroes\": true}}");
    qmp("{\"execute\": \"block-export-add\", \"arguments\": {"
        "\"type\": \"nbd\", \"id\": \"" EXPORT_RO "\", "
        "\"node-name\": \"io-node\", \"name\": \"" EXPORT_RO "\", "
        "\"iothread\": \"io0\"}}");
    baseline_sockets = count_sockets();
}

/* --- canned handshakes --------------------------------------------------- */

static void put32(GByteArray *a, uint32_t v)
{
    uint32_t be = GUINT32_TO_BE(v);

    g_byte_array_append(a, (const guint8 *)&be, 4);
}

static void put16(GByteArray *a, uint16_t v)
{
    uint16_t be = GUINT16_TO_BE(v);

    g_byte_array_append(a, (const guint8 *)&be, 2);
}

static void put_option(GByteArray *a, uint32_t opt, const void *data,
                       uint32_t len)
{
    uint64_t magic = GUINT64_TO_BE(OPTS_MAGIC);

    g_byte_array_append(a, (const guint8 *)&magic, 8);
    put32(a, opt);
    put32(a, len);
    g_byte_array_append(a, data, len);
}

/* NBD_OPT_GO (or INFO) for @name, asking for @ninfo info types. */
static void put_go(GByteArray *a, const char *name, unsigned ninfo)
{
    g_autoptr(GByteArray) d = g_byte_array_new();

    put32(d, strlen(name));
    g_byte_array_append(d, (const guint8 *)name, strlen(name));
    put16(d, ninfo);
    for (unsigned i = 0; i < ninfo; i++) {
        put16(d, INFO_BLOCK_SIZE - i);
    }
    put_option(a, OPT_GO, d->data, d->len);
}

/*
 * The client's half of a successful negotiation on @name:
 *   0: structured replies, base:allocation, GO
 *   1: GO alone (simple replies)
 *   2: EXPORT_NAME, without NO_ZEROES (the oldest fixed-newstyle client)
 *   3: structured replies, GO asking for every info type
 */
static void add_handshake(GByteArray *a, unsigned kind, const char *name)
{
    bool no_zeroes = kind != 2;

    put32(a, FLAG_C_FIXED_NEWSTYLE | (no_zeroes ? FLAG_C_NO_ZEROES : 0));
    if (kind == 0 || kind == 3) {
        put_option(a, OPT_STRUCTURED_REPLY, NULL, 0);
    }
    if (kind == 0) {
        static const char ctx[] = "base:allocation";
        g_autoptr(GByteArray) d = g_byte_array_new();

        put32(d, strlen(name));
        g_byte_array_append(d, (const guint8 *)name, strlen(name));
        put32(d, 1);
        put32(d, strlen(ctx));
        g_byte_array_append(d, (const guint8 *)ctx, strlen(ctx));
        put_option(a, OPT_SET_META_CONTEXT, d->data, d->len);
    }
    if (kind == 2) {
        put_option(a, OPT_EXPORT_NAME, name, strlen(name));
    } else {
        put_go(a, name, kind == 3 ? 4 : 0);
    }
}

/* --- one conversation ---------------------------------------------------- */

typedef struct Conversation {
    int fd;
    const uint8_t *out;
    size_t out_len, sent, chunk;
    bool write_done;
    int64_t delete_after;       /* bits 6-7; -1 when done or never */
    int64_t received;
    bool eof;
    bool timed_out;
} Conversation;

static void conv_readable(void *opaque);
static void conv_writable(void *opaque);

static void conv_update(Conversation *cv)
{
    bool reading = !cv->eof && cv->delete_after != DELETE_LAZY;

    bd_aio_set_fd_handler(main_ctx, cv->fd,
                          reading ? conv_readable : NULL,
                          cv->write_done ? NULL : conv_writable, NULL, cv);
}

/* The server's replies: read and dropped. */
static void conv_readable(void *opaque)
{
    Conversation *cv = opaque;
    static uint8_t sink[256 * 1024];

    for (;;) {
        ssize_t n = recv(cv->fd, sink, sizeof(sink), MSG_DONTWAIT);

        if (n > 0) {
            cv->received += n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        /* end of stream, or the server reset the connection */
        cv->eof = true;
        cv->write_done = true;
        conv_update(cv);
        return;
    }
}

/* One piece of the input per call, then the write side is shut. */
static void conv_writable(void *opaque)
{
    Conversation *cv = opaque;
    size_t len = MIN(cv->chunk, cv->out_len - cv->sent);

    if (len) {
        ssize_t n = send(cv->fd, cv->out + cv->sent, len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            cv->sent += n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                   errno != EINTR) {
            /* the server hung up first: nothing more to say */
            cv->sent = cv->out_len;
        }
    }
    if (cv->sent == cv->out_len) {
        shutdown(cv->fd, SHUT_WR);
        cv->write_done = true;
        conv_update(cv);
    }
}

static void conv_timeout(void *opaque)
{
    Conversation *cv = opaque;

    cv->timed_out = true;
}

static int connect_client(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        die("socket: %s", g_strerror(errno));
    }
    g_strlcpy(sa.sun_path, socket_path, sizeof(sa.sun_path));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("connect %s: %s", socket_path, g_strerror(errno));
    }
    return fd;
}

static void check_export(const char *id)
{
    BdExport *exp = bd_export_find(id);

    if (!exp || bd_export_is_shutting_down(exp)) {
        die("export '%s' is gone after a client", id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool initialised;
    g_autoptr(GByteArray) out = g_byte_array_new();
    Conversation cv = { 0 };
    BdAioTimer *timer;
    uint8_t mode = size ? data[0] : 0;
    bool deleted = false;
    int64_t deadline;

    if (!initialised) {
        set_up();
        initialised = true;
    }
    if (mode & MODE_HANDSHAKE) {
        add_handshake(out, (mode >> MODE_HS_SHIFT) & 3,
                      mode & MODE_READ_ONLY ? EXPORT_RO : EXPORT_RW);
    }
    if (size > 1) {
        g_byte_array_append(out, data + 1, size - 1);
    }

    cv.fd = connect_client();
    cv.out = out->data;
    cv.out_len = out->len;
    cv.chunk = chunk_sizes[(mode >> MODE_CHUNK_SHIFT) & 3];
    conv_update(&cv);

    deadline = bd_clock_ns() + HANG_BOUND_NS;
    timer = bd_aio_timer_new(main_ctx, conv_timeout, &cv);
    bd_aio_timer_mod(timer, deadline);
    cv.delete_after = delete_after[(mode >> MODE_DELETE_SHIFT) & 3];
    while (!cv.eof && !cv.timed_out) {
        bool lazy = cv.delete_after == DELETE_LAZY;
        /* a lazy client looks for the moment nothing moves any more */
        bool progress = bd_aio_poll(main_ctx, !lazy);

        if (lazy ? !progress
                 : cv.delete_after >= 0 && (cv.sent || cv.write_done) &&
                   cv.received >= cv.delete_after) {
            /* from the loop, as a QMP client's command would run */
            qmp("{\"execute\": \"block-export-del\", \"arguments\": {"
                "\"id\": \"" EXPORT_RW "\", \"mode\": \"hard\"}}");
            cv.delete_after = -1;
            deleted = true;
            conv_update(&cv);       /* a lazy client starts reading */
        }
    }
    if (cv.timed_out) {
        die("the server did not hang up within %d s (sent %zu of %zu "
            "bytes)", (int)(HANG_BOUND_NS / 1000000000), cv.sent,
            cv.out_len);
    }
    bd_aio_set_fd_handler(main_ctx, cv.fd, NULL, NULL, NULL, NULL);
    close(cv.fd);

    /*
     * The server frees the connection in a bottom half after its last
     * coroutine ends, closing its descriptor.  Wait for that.
     */
    while (count_sockets() != baseline_sockets && !cv.timed_out) {
        bd_aio_poll(main_ctx, true);
    }
    if (cv.timed_out) {
        die("the server kept %d sockets after its client left",
            count_sockets() - baseline_sockets);
    }
    if (deleted) {
        /* the export goes when its last client has: then add it back */
        while (bd_export_find(EXPORT_RW) && !cv.timed_out) {
            bd_aio_poll(main_ctx, true);
        }
        if (cv.timed_out) {
            die("the removed export '%s' did not go", EXPORT_RW);
        }
        add_rw_export();
    }
    bd_aio_timer_free(timer);
    check_export(EXPORT_RW);
    check_export(EXPORT_RO);

    /*
     * What this input wrote must not change how the next one runs: an
     * input has to fail the same way when replayed alone.
     */
    if (fallocate(image_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  IMAGE_SIZE) < 0 &&
        (errno != EOPNOTSUPP || ftruncate(image_fd, 0) < 0 ||
         ftruncate(image_fd, IMAGE_SIZE) < 0)) {
        die("cannot empty the image: %s", g_strerror(errno));
    }
    return 0;
}
