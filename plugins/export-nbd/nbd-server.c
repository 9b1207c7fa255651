/*
 * export-nbd: the server: listening sockets, the connection limit, the
 * exports clients can ask for, and the nbd-server-* QMP commands.
 *
 * Everything here runs in the main loop.  At max-connections the server
 * stops watching its listening sockets, as QEMU does: further clients
 * wait in the kernel's backlog, without a greeting, until one goes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "nbd-int.h"
#include "nbd-proto.h"

/* The send buffer asked for each connection's socket. */
#define NBD_SOCKET_SNDBUF (4 * 1024 * 1024)

/* QEMU's default for max-connections. */
#define NBD_DEFAULT_MAX_CONNECTIONS 100

typedef struct NbdServer {
    BdAioContext *ctx;
    GArray *listen_fds;         /* of int */
    bool watching;
    char *unix_path;            /* socket file to remove on stop */
    uint32_t max_connections;
    GList *clients;             /* of NbdClient */
    unsigned nclients;
} NbdServer;

static NbdServer *server;
static GList *exports;          /* of NbdExport, creation order */

/*
 * The socket file is removed at daemon exit too.  Only by the process
 * that made it: a parent that exits after fork must not remove its
 * child's socket.
 */
static pid_t unix_path_owner;

static void remove_socket_at_exit(void)
{
    if (server && server->unix_path && getpid() == unix_path_owner) {
        unlink(server->unix_path);
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

static void server_update_watch(void)
{
    bool watch = server->max_connections == 0 ||
                 server->nclients < server->max_connections;

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

static void server_accept(void *opaque)
{
    int lfd = GPOINTER_TO_INT(opaque);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        return;     /* EAGAIN, or a client that went away already */
    }
    /*
     * A read reply is up to 32 MiB: with the default send buffer (about
     * 200 KiB) a 1 MiB reply takes several sendmsg calls with a wait for
     * the socket each.  Ask for more (the kernel caps it at wmem_max);
     * a refusal only costs speed.
     */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ NBD_SOCKET_SNDBUF },
               sizeof(int));
    server->clients = g_list_prepend(server->clients, nbd_client_new(fd));
    server->nclients++;
    server_update_watch();
}

void nbd_server_client_gone(NbdClient *c)
{
    if (server && g_list_find(server->clients, c)) {
        server->clients = g_list_remove(server->clients, c);
        server->nclients--;
        server_update_watch();
    }
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

static int listen_inet(JsonObject *a, GError **errp)
{
    const char *host = json_object_get_string_member(a, "host");
    const char *port = json_object_get_string_member(a, "port");
    struct addrinfo hints = {
        .ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
        .ai_socktype = SOCK_STREAM,
    }, *res = NULL;
    int rc, fd = -1, saved = 0;

    if (json_object_get_boolean_member_with_default(a, "ipv4", false) &&
        !json_object_get_boolean_member_with_default(a, "ipv6", false)) {
        hints.ai_family = AF_INET;
    } else if (json_object_get_boolean_member_with_default(a, "ipv6",
                                                           false) &&
               !json_object_get_boolean_member_with_default(a, "ipv4",
                                                            false)) {
        hints.ai_family = AF_INET6;
    }
    if (json_object_has_member(a, "to")) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "addr.to (port ranges) is not supported yet");
        return -1;
    }
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "address resolution failed for %s:%s: %s", host, port,
                    gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int on = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
                    SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0) {
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Failed to bind socket: %s", g_strerror(saved));
    }
    return fd;
}

static int listen_unix(JsonObject *a, char **created, GError **errp)
{
    const char *path = json_object_get_string_member(a, "path");
    bool abstract = json_object_get_boolean_member_with_default(a, "abstract",
                                                                false);
    bool tight = json_object_get_boolean_member_with_default(a, "tight",
                                                             true);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t plen = strlen(path);
    socklen_t len;
    int fd;

    if (plen + (abstract ? 1 : 0) >= sizeof(sun.sun_path)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "UNIX socket path '%s' is too long", path);
        return -1;
    }
    if (abstract) {
        memcpy(sun.sun_path + 1, path, plen);
        len = tight ? offsetof(struct sockaddr_un, sun_path) + 1 + plen
                    : sizeof(sun);
    } else {
        memcpy(sun.sun_path, path, plen);
        len = sizeof(sun);
        if (unlink(path) < 0 && errno != ENOENT) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Failed to unlink socket %s: %s", path,
                        g_strerror(errno));
            return -1;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, len) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        int saved = errno;

        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Failed to bind socket to %s: %s", path,
                    g_strerror(saved));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (!abstract) {
        *created = g_strdup(path);
    }
    return fd;
}

static int listen_fd(const char *str, GError **errp)
{
    char *end;
    long v;
    int type = 0, acc = 0;
    socklen_t len = sizeof(type);

    errno = 0;
    v = strtol(str, &end, 10);
    if (!g_ascii_isdigit(str[0]) || *end || errno || v > INT_MAX) {
        /* a name: a socket systemd passed (LISTEN_FDNAMES) */
        v = bd_socket_activation_fd(str);
        if (v < 0) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "File descriptor named '%s' has not been found",
                        str);
            return -1;
        }
    }
    if (getsockopt(v, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "File descriptor '%s' is not a stream socket", str);
        return -1;
    }
    len = sizeof(acc);
    if (getsockopt(v, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "File descriptor '%s' is not a listening socket", str);
        return -1;
    }
    if (!g_unix_set_fd_nonblocking(v, TRUE, NULL)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Cannot make file descriptor '%s' non-blocking", str);
        return -1;
    }
    return (int)v;
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
    if (server->unix_path) {
        unlink(server->unix_path);
        g_free(server->unix_path);
    }
    /* connections still negotiating: they end on their own */
    for (GList *l = server->clients; l; l = l->next) {
        nbd_client_close(l->data);
    }
    g_list_free(server->clients);
    g_clear_pointer(&server, g_free);
}

/* --- QMP ---------------------------------------------------------------------- */

bool nbd_qmp_server_start(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonObject *addr = json_object_get_object_member(args, "addr");
    const char *type = json_object_get_string_member(addr, "type");
    JsonObject *data = json_object_get_object_member(addr, "data");
    g_autofree char *created = NULL;
    int fd;

    if (server) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "NBD server already running");
        return false;
    }
    if (json_object_has_member(args, "tls-creds") ||
        json_object_has_member(args, "tls-authz")) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "NBD over TLS (tls-creds, tls-authz) is not "
                            "supported yet");
        return false;
    }
    if (strcmp(type, "inet") == 0) {
        fd = listen_inet(data, errp);
    } else if (strcmp(type, "unix") == 0) {
        fd = listen_unix(data, &created, errp);
    } else if (strcmp(type, "fd") == 0) {
        fd = listen_fd(json_object_get_string_member(data, "str"), errp);
    } else {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "NBD server on a %s socket is not supported yet", type);
        fd = -1;
    }
    if (fd < 0) {
        return false;
    }
    server = g_new0(NbdServer, 1);
    server->ctx = bd_aio_current_context();
    server->listen_fds = g_array_new(FALSE, FALSE, sizeof(int));
    g_array_append_val(server->listen_fds, fd);
    server->unix_path = g_steal_pointer(&created);
    if (server->unix_path) {
        static bool registered;

        unix_path_owner = getpid();
        if (!registered) {
            registered = true;
            atexit(remove_socket_at_exit);
        }
    }
    server->max_connections = json_object_get_int_member_with_default(
        args, "max-connections", NBD_DEFAULT_MAX_CONNECTIONS);
    server->watching = false;
    server_update_watch();
    return true;
}

bool nbd_qmp_server_stop(JsonObject *args, JsonNode **ret, GError **errp)
{
    if (!server) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "NBD server not running");
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

    if (!server) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "NBD server not running");
        return false;
    }
    /* the export's id is its name, as in QEMU */
    json_object_set_string_member(opts, "type", "nbd");
    json_object_set_string_member(opts, "id", name);
    json_object_set_string_member(opts, "node-name", device);
    json_object_set_string_member(opts, "name", name);
    if (json_object_has_member(args, "writable")) {
        json_object_set_boolean_member(
            opts, "writable", json_object_get_boolean_member(args, "writable"));
    }
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
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "NBD server not running");
        return false;
    }
    exp = bd_export_find(name);
    if (exp && strcmp(bd_export_get_type_name(exp), "nbd") != 0) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Block export '%s' is not an NBD export", name);
        return false;
    }
    return bd_export_del(name, strcmp(mode, "hard") == 0, errp);
}
