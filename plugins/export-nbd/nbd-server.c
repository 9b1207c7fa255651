/*
 * export-nbd: the server: listening sockets, the connection limit, the
 * exports clients can ask for, and the nbd-server-* QMP commands.
 *
 * Everything here runs in the main loop.  At max-connections the server
 * stops watching its listening sockets, as QEMU does: further clients
 * wait in the kernel's backlog, without a greeting, until one goes.
 *
 * Clients that connect and never finish their handshake must not shut
 * the others out: each has handshake-max-seconds to reach the
 * transmission phase (QEMU's CVE-2024-7409 fix), and at max-connections
 * one that has been negotiating for a while already (evict_after_ns)
 * makes room for a newcomer (the oldest first), so that a fresh client
 * does not wait for the deadlines of a crowd of stalled ones.  Clients
 * in the transmission phase are never dropped for another.
 *
 * Out of file descriptors, accept() fails and leaves the connection
 * queued: the server then stops watching its sockets and tries again
 * after BD_SOCKET_ACCEPT_RETRY_MS, or as soon as one of its clients
 * goes, rather than spin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-int.h"
#include "nbd-proto.h"

/* The send buffer asked for each connection's socket. */
#define NBD_SOCKET_SNDBUF (4 * 1024 * 1024)

/* QEMU's default for max-connections. */
#define NBD_DEFAULT_MAX_CONNECTIONS 100

/* QEMU's default for handshake-max-seconds. */
#define NBD_DEFAULT_HANDSHAKE_MAX_SECONDS 10

/*
 * At max-connections, how long a client must have been negotiating to
 * be dropped for a newcomer: long enough for a real handshake, TLS
 * included, on a slow link (a few round trips); a client that connects
 * a moment after another is not the reason to cut that one off.  With
 * a handshake deadline, a tenth of it if that is shorter: stalled
 * clients then make way max-connections at a time, every tenth of the
 * deadline, and a fresh client queued behind up to ten times
 * max-connections of them is served within the deadline.
 */
#define NBD_EVICT_AFTER_NS INT64_C(1000000000)

typedef struct NbdServer {
    BdAioContext *ctx;
    GArray *listen_fds;         /* of int */
    bool watching;
    BdSocketFile *socket_file;  /* to remove on stop, or NULL */
    uint32_t max_connections;
    uint32_t handshake_max_seconds;
    int64_t evict_after_ns;     /* see NBD_EVICT_AFTER_NS */
    GList *clients;             /* of NbdClient, newest first */
    unsigned nclients;
    bool backoff;               /* out of descriptors: wait for retry */
    BdAioTimer *retry_timer;    /* ends a backoff, or an eviction wait */
    NbdTlsConfig *tls;          /* NULL: no TLS */
    bool exit_after_last_client; /* see nbd_server_client_gone() */
} NbdServer;

static NbdServer *server;
static GList *exports;          /* of NbdExport, creation order */

/*
 * The socket file is removed at daemon exit too (only by the process
 * that made it: see bd_socket_file_remove()).
 */
static void remove_socket_at_exit(void)
{
    if (server) {
        g_clear_pointer(&server->socket_file, bd_socket_file_remove);
    }
}

bool nbd_server_is_running(void)
{
    return server != NULL;
}

uint32_t nbd_server_max_connections(void)
{
    return server ? server->max_connections : NBD_DEFAULT_MAX_CONNECTIONS;
}

NbdExport *nbd_export_lookup(const char *name)
{
    for (GList *l = exports; l; l = l->next) {
        NbdExport *e = l->data;

        if (strcmp(e->name, name) == 0 &&
            !bd_export_is_shutting_down(e->exp)) {
            return e;
        }
    }
    return NULL;
}

GList *nbd_export_list(void)
{
    return exports;
}

BdAioContext *nbd_export_next_context(NbdExport *e)
{
    BdAioContext *const *ctxs;
    size_t n = bd_export_get_multithread_contexts(e->exp, &ctxs);

    if (!n) {
        return bd_export_get_aio_context(e->exp);
    }
    /*
     * Round-robin: every connection is served whole in one thread (its
     * socket, its requests and replies stay there, with no locking), and
     * a client that opens several connections (multi-conn) gets them
     * spread over the threads.
     */
    return ctxs[e->next_ctx++ % n];
}

void nbd_server_add_export(NbdExport *e)
{
    exports = g_list_append(exports, e);
}

void nbd_server_remove_export(NbdExport *e)
{
    exports = g_list_remove(exports, e);
}

/* --- accepting ---------------------------------------------------------------- */

static void server_accept(void *opaque);

/*
 * The client to drop for a newcomer at max-connections: the one
 * negotiating the longest, if for evict_after_ns at least.  Else
 * NULL, and *@when is when one will be (INT64_MAX: none negotiating).
 */
static NbdClient *evictable_client(int64_t now, int64_t *when)
{
    NbdClient *oldest = NULL;
    int64_t oldest_since = INT64_MAX;

    for (GList *l = server->clients; l; l = l->next) {
        int64_t since = nbd_client_negotiating_since(l->data);

        if (since >= 0 && since <= oldest_since) {
            oldest_since = since;
            oldest = l->data;
        }
    }
    if (oldest && now - oldest_since >= server->evict_after_ns) {
        return oldest;
    }
    *when = oldest ? oldest_since + server->evict_after_ns : INT64_MAX;
    return NULL;
}

static bool server_at_limit(void)
{
    return server->max_connections &&
           server->nclients >= server->max_connections;
}

static void server_update_watch(void)
{
    int64_t when = INT64_MAX;
    bool watch;

    if (server->backoff) {
        watch = false;              /* retry_timer is armed */
    } else if (!server_at_limit()) {
        watch = true;
    } else {
        watch = evictable_client(bd_clock_ns(), &when) != NULL;
        if (when != INT64_MAX) {
            bd_aio_timer_mod(server->retry_timer, when);
        }
    }
    if (watch == server->watching) {
        return;
    }
    server->watching = watch;
    for (guint i = 0; i < server->listen_fds->len; i++) {
        int fd = g_array_index(server->listen_fds, int, i);

        bd_aio_set_fd_handler(server->ctx, fd, watch ? server_accept : NULL,
                              NULL, NULL, GINT_TO_POINTER(fd));
    }
}

/* End of a backoff or of a wait for an evictable client: look again. */
static void server_retry(void *opaque)
{
    server->backoff = false;
    server_update_watch();
}

static void server_accept(void *opaque)
{
    int lfd = GPOINTER_TO_INT(opaque);
    NbdClient *victim = NULL;
    bool exhausted;
    int64_t when;
    int fd;

    if (server_at_limit()) {
        victim = evictable_client(bd_clock_ns(), &when);
        if (!victim) {
            server_update_watch();
            return;
        }
    }
    fd = bd_socket_accept(lfd, "NBD server", &exhausted);
    if (fd < 0) {
        if (exhausted) {
            server->backoff = true;
            bd_aio_timer_mod(server->retry_timer,
                             bd_clock_ns() +
                             BD_SOCKET_ACCEPT_RETRY_MS * INT64_C(1000000));
            server_update_watch();
        }
        return;     /* else EAGAIN, or a client that went away already */
    }
    if (victim) {
        /* its slot is the newcomer's from now on; it ends on its own */
        server->clients = g_list_remove(server->clients, victim);
        server->nclients--;
        nbd_client_drop(victim);
    }
    /*
     * A read reply is up to 32 MiB: with the default send buffer (about
     * 200 KiB) a 1 MiB reply takes several sendmsg calls with a wait for
     * the socket each.  Ask for more (the kernel caps it at wmem_max);
     * a refusal only costs speed.
     */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ NBD_SOCKET_SNDBUF },
               sizeof(int));
    server->clients = g_list_prepend(
        server->clients,
        nbd_client_new(fd, server->tls, server->handshake_max_seconds));
    server->nclients++;
    server_update_watch();
}

void nbd_server_client_gone(NbdClient *c)
{
    if (!server) {
        return;
    }
    if (g_list_find(server->clients, c)) {
        server->clients = g_list_remove(server->clients, c);
        server->nclients--;
        /*
         * blockd-nbd(8) without -t: qemu-nbd ends once a client that
         * negotiated leaves and no other is connected; the daemon then
         * shuts down as on SIGTERM (its exports closed, exit status 0).
         */
        if (server->exit_after_last_client && server->nclients == 0 &&
            nbd_client_negotiated(c)) {
            kill(getpid(), SIGTERM);
        }
    }
    if (server->backoff) {
        /* its descriptor is closed once this returns: try then */
        bd_aio_timer_mod(server->retry_timer, bd_clock_ns());
    }
    server_update_watch();
}

void nbd_server_close_clients(NbdExport *e)
{
    if (!server) {
        return;
    }
    for (GList *l = server->clients; l; l = l->next) {
        if (nbd_client_get_export(l->data) == e) {
            nbd_client_close(l->data);
        }
    }
}

/* --- listening ----------------------------------------------------------------- */

/*
 * nbd-server-start takes the legacy SocketAddress, its members under
 * 'data'; <blockd/socket.h> wants them beside 'type'.
 */
static JsonObject *flat_address(JsonObject *legacy)
{
    JsonObject *flat = json_object_new();
    JsonObject *data = json_object_get_object_member(legacy, "data");
    g_autoptr(GList) members = json_object_get_members(data);

    json_object_set_string_member(
        flat, "type", json_object_get_string_member(legacy, "type"));
    for (GList *l = members; l; l = l->next) {
        json_object_set_member(flat, l->data,
                               json_object_dup_member(data, l->data));
    }
    return flat;
}

static void server_free(void)
{
    for (guint i = 0; i < server->listen_fds->len; i++) {
        int fd = g_array_index(server->listen_fds, int, i);

        if (server->watching) {
            bd_aio_set_fd_handler(server->ctx, fd, NULL, NULL, NULL, NULL);
        }
        close(fd);
    }
    g_array_unref(server->listen_fds);
    bd_aio_timer_free(server->retry_timer);
    g_clear_pointer(&server->socket_file, bd_socket_file_remove);
    /* connections still negotiating: they end on their own */
    for (GList *l = server->clients; l; l = l->next) {
        nbd_client_close(l->data);
    }
    g_list_free(server->clients);
    nbd_tls_config_free(server->tls);
    g_clear_pointer(&server, g_free);
}

/* --- QMP ---------------------------------------------------------------------- */

bool nbd_qmp_server_start(JsonObject *args, JsonNode **ret, GError **errp)
{
    g_autoptr(JsonObject) addr = flat_address(
        json_object_get_object_member(args, "addr"));
    const char *tls_creds = json_object_get_string_member_with_default(
        args, "tls-creds", NULL);
    BdSocketFile *socket_file = NULL;
    NbdTlsConfig *tls = NULL;
    int fd;

    if (server) {
        bd_error_setg(errp, "NBD server already running");
        return false;
    }
    /*
     * Like QEMU, a tls-authz without tls-creds is accepted: there is then
     * no TLS client to authorize.
     */
    if (tls_creds) {
        tls = nbd_tls_config_new(
            tls_creds,
            json_object_get_string_member_with_default(args, "tls-authz",
                                                       NULL),
            errp);
        if (!tls) {
            return false;
        }
    }
    fd = bd_socket_listen(addr, SOMAXCONN, &socket_file, errp);
    if (fd < 0) {
        nbd_tls_config_free(tls);
        return false;
    }
    server = g_new0(NbdServer, 1);
    server->tls = tls;
    server->ctx = bd_aio_current_context();
    server->listen_fds = g_array_new(FALSE, FALSE, sizeof(int));
    g_array_append_val(server->listen_fds, fd);
    server->socket_file = socket_file;
    /*
     * Set only by blockd-nbd(8) for qemu-nbd's default (no -t): not a
     * QMP argument, so that nbd-server-start stays qsd's.
     */
    server->exit_after_last_client =
        g_strcmp0(g_getenv("BLOCKD_NBD_EXIT_AFTER_LAST_CLIENT"), "1") == 0;
    if (socket_file) {
        static bool registered;

        if (!registered) {
            registered = true;
            atexit(remove_socket_at_exit);
        }
    }
    server->max_connections = json_object_get_int_member_with_default(
        args, "max-connections", NBD_DEFAULT_MAX_CONNECTIONS);
    server->handshake_max_seconds = json_object_get_int_member_with_default(
        args, "handshake-max-seconds", NBD_DEFAULT_HANDSHAKE_MAX_SECONDS);
    server->evict_after_ns = server->handshake_max_seconds
        ? MIN(NBD_EVICT_AFTER_NS,
              server->handshake_max_seconds * INT64_C(100000000))
        : NBD_EVICT_AFTER_NS;
    server->retry_timer = bd_aio_timer_new(server->ctx, server_retry, NULL);
    server->watching = false;
    server_update_watch();
    return true;
}

bool nbd_qmp_server_stop(JsonObject *args, JsonNode **ret, GError **errp)
{
    if (!server) {
        bd_error_setg(errp, "NBD server not running");
        return false;
    }
    bd_export_close_all("nbd");
    if (server) {
        server_free();
    }
    return true;
}

bool nbd_qmp_server_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *device = json_object_get_string_member(args, "device");
    const char *name = json_object_get_string_member_with_default(args, "name",
                                                                  device);
    g_autoptr(JsonObject) opts = json_object_new();
    bool writable = json_object_get_boolean_member_with_default(
        args, "writable", false);
    BdNode *node;

    /*
     * The device names a node (there are no other devices here); it is
     * looked up before the server is checked, as QEMU does.
     */
    node = bd_node_find(device);
    if (!node) {
        bd_error_setg(errp,
                      "Cannot find device='%s' nor node-name='%s'", device,
                      device);
        return false;
    }
    /*
     * Unlike block-export-add, the legacy command quietly exports a
     * read-only node read-only when asked for a writable export, as QEMU
     * 7.2 does.
     */
    if (bd_node_is_read_only(node)) {
        writable = false;
    }
    if (!server) {
        bd_error_setg(errp, "NBD server not running");
        return false;
    }
    /* the export's id is its name, as in QEMU */
    json_object_set_string_member(opts, "type", "nbd");
    json_object_set_string_member(opts, "id", name);
    json_object_set_string_member(opts, "node-name", device);
    json_object_set_string_member(opts, "name", name);
    json_object_set_boolean_member(opts, "writable", writable);
    if (json_object_has_member(args, "description")) {
        json_object_set_string_member(
            opts, "description",
            json_object_get_string_member(args, "description"));
    }
    if (json_object_has_member(args, "bitmap")) {
        JsonArray *a = json_array_new();

        json_array_add_string_element(
            a, json_object_get_string_member(args, "bitmap"));
        json_object_set_array_member(opts, "bitmaps", a);
    }
    return bd_export_add(opts, errp) != NULL;
}

bool nbd_qmp_server_remove(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *name = json_object_get_string_member(args, "name");
    const char *mode = json_object_get_string_member_with_default(args, "mode",
                                                                  "safe");
    BdExport *exp;

    if (!server) {
        bd_error_setg(errp, "NBD server not running");
        return false;
    }
    exp = bd_export_find(name);
    if (exp && strcmp(bd_export_get_type_name(exp), "nbd") != 0) {
        bd_error_setg(errp, "Block export '%s' is not an NBD export", name);
        return false;
    }
    return bd_export_del(name, strcmp(mode, "hard") == 0, errp);
}
