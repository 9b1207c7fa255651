/*
 * The socket backend of character devices: a listening socket that
 * serves one client at a time (see chardev.h).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include <linux/vm_sockets.h>

#include <blockd/error.h>
#include <blockd/socket.h>

#include "chardev/chardev-int.h"
#include "os/socket-connect.h"

/*
 * "unix:PATH,server=on", "tcp:HOST:PORT,server=on", "vsock:CID:PORT"...
 * for query-chardev: QEMU describes the address the socket is bound to,
 * so a port 0 shows the port taken and an fd the address behind it.
 */
static char *describe_bound_address(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return g_strdup("unknown");
    }
    switch (ss.ss_family) {
    case AF_UNIX: {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);

        if (n > 0 && sun->sun_path[0] == '\0') {
            g_autofree char *name = g_strndup(sun->sun_path + 1, n - 1);

            /* tight: the address ends with the name, not padded out */
            return g_strdup_printf("unix:%s,abstract=on%s,server=on", name,
                                   n < sizeof(sun->sun_path) ? ",tight=on"
                                                             : "");
        }
        g_autofree char *path = g_strndup(sun->sun_path, n);

        return g_strdup_printf("unix:%s,server=on", path);
    }
    case AF_INET:
    case AF_INET6:
        if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
                        serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
            return g_strdup("unknown");
        }
        return g_strdup_printf("tcp:%s:%s,server=on", host, serv);
    case AF_VSOCK: {
        struct sockaddr_vm *svm = (struct sockaddr_vm *)&ss;

        return g_strdup_printf("vsock:%u:%u", svm->svm_cid, svm->svm_port);
    }
    }
    return g_strdup("unknown");
}

static void numeric_name(const struct sockaddr_storage *ss, socklen_t len,
                         char *host, size_t hlen, char *serv, size_t slen)
{
    if (getnameinfo((const struct sockaddr *)ss, len, host, hlen, serv,
                    slen, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        g_strlcpy(host, "?", hlen);
        g_strlcpy(serv, "?", slen);
    }
}

char *bd_char_socket_filename(BdChardev *chr)
{
    struct sockaddr_storage local, peer;
    socklen_t llen = sizeof(local), plen = sizeof(peer);
    char lhost[NI_MAXHOST], lserv[NI_MAXSERV];
    char phost[NI_MAXHOST], pserv[NI_MAXSERV];
    bool v6;

    const char *listen = chr->server ? ",server=on" : "";

    if (!chr->connected) {
        return g_strdup_printf("disconnected:%s", chr->addr_desc);
    }
    if (getsockname(chr->conn_fd, (struct sockaddr *)&local, &llen) < 0) {
        return g_strdup(chr->addr_desc);
    }
    if (local.ss_family == AF_UNIX) {
        /*
         * An abstract name starts with NUL: QEMU shows it empty; so is
         * the unbound end of a client (only the family comes back).
         */
        size_t n = llen > offsetof(struct sockaddr_un, sun_path)
                   ? llen - offsetof(struct sockaddr_un, sun_path) : 0;
        g_autofree char *path =
            g_strndup(((struct sockaddr_un *)&local)->sun_path, n);

        return g_strdup_printf("unix:%s%s", path, listen);
    }
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) {
        return g_strdup("unknown");
    }
    if (getpeername(chr->conn_fd, (struct sockaddr *)&peer, &plen) < 0) {
        return g_strdup(chr->addr_desc);
    }
    numeric_name(&local, llen, lhost, sizeof(lhost), lserv, sizeof(lserv));
    numeric_name(&peer, plen, phost, sizeof(phost), pserv, sizeof(pserv));
    v6 = local.ss_family == AF_INET6;
    return g_strdup_printf("tcp:%s%s%s:%s%s <-> %s%s%s:%s",
                           v6 ? "[" : "", lhost, v6 ? "]" : "", lserv,
                           listen,
                           v6 ? "[" : "", phost, v6 ? "]" : "", pserv);
}

/* ---- connections ---- */

/*
 * A client connection nobody reads (no frontend yet) still ends when the
 * peer goes, as in QEMU: query-chardev then says "disconnected", and
 * 'reconnect' tries again.
 */
static gboolean chardev_hup(gint fd, GIOCondition cond, gpointer opaque)
{
    BdChardev *chr = opaque;

    chr->hup_source = 0;
    bd_chardev_disconnect(chr);
    return G_SOURCE_REMOVE;
}

static void chardev_connected(BdChardev *chr, int fd)
{
    chr->conn_fd = fd;
    chr->connected = true;
    if (chr->listen_source) {
        g_source_remove(chr->listen_source);
        chr->listen_source = 0;
    }
    if (chr->nodelay) {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (chr->ops) {
        chr->ops->open(chr->opaque, fd, fd);
    } else if (!chr->server) {
        chr->hup_source = g_unix_fd_add(fd, G_IO_HUP | G_IO_ERR, chardev_hup,
                                        chr);
    }
}

void bd_char_socket_attached(BdChardev *chr)
{
    if (chr->hup_source) {
        g_source_remove(chr->hup_source);
        chr->hup_source = 0;
    }
}

/* ---- client mode: connecting, and again after 'reconnect' seconds ---- */

/*
 * A connection attempt made in a thread, so that a slow or silent peer
 * never holds up the main loop; QEMU connects in a thread as well.  The
 * attempt owns itself: a chardev removed meanwhile only clears @chr.
 */
typedef struct CharConnect {
    BdChardev *chr;
    JsonObject *addr;   /* the thread's own copy of chr->addr */
    int fd;
    GError *err;
} CharConnect;

static void char_connect_start(BdChardev *chr);

static gboolean reconnect_timer_fired(gpointer opaque)
{
    BdChardev *chr = opaque;

    chr->reconnect_timer = 0;
    char_connect_start(chr);
    return G_SOURCE_REMOVE;
}

static void schedule_reconnect(BdChardev *chr)
{
    if (chr->reconnect > 0 && !chr->reconnect_timer && !chr->connecting) {
        /* milliseconds: g_timeout_add_seconds() may be a second late */
        chr->reconnect_timer = g_timeout_add(
            (guint)MIN(chr->reconnect, G_MAXUINT / 1000) * 1000,
            reconnect_timer_fired, chr);
    }
}

static gboolean char_connect_done(gpointer opaque)
{
    CharConnect *c = opaque;
    BdChardev *chr = c->chr;

    if (chr) {
        chr->connecting = NULL;
        if (c->fd >= 0) {
            chr->connect_err_reported = false;
            chardev_connected(chr, c->fd);
            c->fd = -1;
        } else {
            /* once until a connection succeeds, as QEMU reports it */
            if (!chr->connect_err_reported) {
                fprintf(stderr, "blockd: Unable to connect character "
                        "device %s: %s\n", chr->id, c->err->message);
                chr->connect_err_reported = true;
            }
            schedule_reconnect(chr);
        }
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_clear_error(&c->err);
    json_object_unref(c->addr);
    g_free(c);
    return G_SOURCE_REMOVE;
}

static gpointer char_connect_thread(gpointer opaque)
{
    CharConnect *c = opaque;

    c->fd = bd_socket_connect(c->addr, &c->err);
    g_idle_add(char_connect_done, c);
    return NULL;
}

/* A deep copy through text: nothing of it is shared with the original. */
static JsonObject *copy_object(JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);
    g_autofree char *text = json_to_string(node, false);
    g_autoptr(JsonNode) copy = json_from_string(text, NULL);

    return json_object_ref(json_node_get_object(copy));
}

static void char_connect_start(BdChardev *chr)
{
    CharConnect *c = g_new0(CharConnect, 1);

    c->chr = chr;
    c->addr = copy_object(chr->addr);
    c->fd = -1;
    chr->connecting = c;
    g_thread_unref(g_thread_new("chardev-connect", char_connect_thread, c));
}

void bd_char_socket_disconnected(BdChardev *chr)
{
    if (chr->hup_source) {
        g_source_remove(chr->hup_source);
        chr->hup_source = 0;
    }
    if (chr->server) {
        bd_char_socket_listen_watch(chr);
    } else {
        schedule_reconnect(chr);
    }
}

static gboolean chardev_accept_retry(gpointer opaque)
{
    BdChardev *chr = opaque;

    chr->retry_source = 0;
    bd_char_socket_listen_watch(chr);
    return G_SOURCE_REMOVE;
}

static gboolean chardev_accept_ready(gint fd, GIOCondition cond,
                                     gpointer opaque)
{
    BdChardev *chr = opaque;
    bool exhausted;
    int conn = bd_socket_accept(fd, chr->accept_what, &exhausted);

    if (conn < 0 && exhausted) {
        /*
         * The client stays queued and the socket readable: watching it
         * would spin until a descriptor is free.  Look again later.
         */
        chr->listen_source = 0;
        chr->retry_source = g_timeout_add(BD_SOCKET_ACCEPT_RETRY_MS,
                                          chardev_accept_retry, chr);
        return G_SOURCE_REMOVE;
    }
    if (conn < 0) {
        /* EAGAIN, or the peer gave up before we accepted: wait again */
        return G_SOURCE_CONTINUE;
    }
    chr->listen_source = 0;
    chardev_connected(chr, conn);
    return G_SOURCE_REMOVE;
}

void bd_char_socket_listen_watch(BdChardev *chr)
{
    if (chr->kind == CHARDEV_SOCKET && !chr->connected && chr->ops &&
        !chr->listen_source && !chr->retry_source && chr->listen_fd >= 0) {
        chr->listen_source = g_unix_fd_add(chr->listen_fd, G_IO_IN,
                                           chardev_accept_ready, chr);
    }
}

/* ---- opening and closing ---- */

/* server=on without wait=off: hold start-up until a client connects. */
static bool wait_for_client(BdChardev *chr, GError **errp)
{
    g_autofree char *name = bd_chardev_filename(chr);
    struct pollfd pfd = { .fd = chr->listen_fd, .events = POLLIN };

    fprintf(stderr, "blockd: info: waiting for connection on: %s\n", name);
    for (;;) {
        int conn = accept4(chr->listen_fd, NULL, NULL,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (conn >= 0) {
            chardev_connected(chr, conn);
            return true;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED) {
            bd_error_setg(errp, "Failed to accept a connection: %s",
                          g_strerror(errno));
            return false;
        }
        poll(&pfd, 1, -1);
    }
}

/*
 * Check the legacy SocketAddress (its members under 'data') for what
 * must be there, and keep it in the flat form <blockd/socket.h> takes.
 */
static bool parse_socket_addr(BdChardev *chr, JsonObject *addr,
                              GError **errp)
{
    static const char *const required[][3] = {
        { "unix", "path", NULL },
        { "inet", "host", "port" },
        { "vsock", "cid", "port" },
        { "fd", "str", NULL },
    };
    const char *type;
    JsonObject *data;
    g_autoptr(GList) members = NULL;

    type = bd_chardev_str_member(addr, "type", "backend.data.addr.", true,
                                 errp);
    if (!type) {
        return false;
    }
    data = bd_chardev_obj_member(addr, "data", "backend.data.addr.", true,
                                 errp);
    if (!data) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        if (strcmp(type, required[i][0]) != 0) {
            continue;
        }
        for (size_t j = 1; j < 3 && required[i][j]; j++) {
            if (!bd_chardev_str_member(data, required[i][j],
                                       "backend.data.addr.data.", true,
                                       errp)) {
                return false;
            }
        }
        chr->addr = json_object_new();
        json_object_set_string_member(chr->addr, "type", type);
        members = json_object_get_members(data);
        for (GList *l = members; l; l = l->next) {
            json_object_set_member(chr->addr, l->data,
                                   json_object_dup_member(data, l->data));
        }
        return true;
    }
    bd_error_setg(errp, "Parameter 'backend.data.addr.type' does not accept "
                  "value '%s'", type);
    return false;
}

/*
 * "disconnected:" + this is what query-chardev says of a client that is
 * not connected: the address as given (QEMU's SocketAddress_to_str()).
 */
static char *describe_client_address(JsonObject *addr)
{
    const char *type = json_object_get_string_member(addr, "type");

    if (strcmp(type, "unix") == 0) {
        return g_strdup_printf("unix:%s", json_object_get_string_member(
                                   addr, "path"));
    }
    return g_strdup_printf("tcp:%s:%s",
                           json_object_get_string_member(addr, "host"),
                           json_object_get_string_member(addr, "port"));
}

bool bd_char_socket_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    static const char *const unsupported[] = {
        "tls-creds", "tls-authz", "telnet", "tn3270", "websocket",
        "logfile",
    };
    JsonObject *addr;
    bool server = true, wait = true, has_reconnect = false;
    gint64 reconnect = 0;
    const char *addr_type;

    addr = bd_chardev_obj_member(data, "addr", "backend.data.", true, errp);
    if (!addr || !parse_socket_addr(chr, addr, errp)) {
        return false;
    }
    if (!bd_chardev_bool_member(data, "server", "backend.data.", &server,
                                errp) ||
        !bd_chardev_bool_member(data, "wait", "backend.data.", &wait, errp) ||
        !bd_chardev_bool_member(data, "nodelay", "backend.data.",
                                &chr->nodelay, errp) ||
        !bd_chardev_int_member(data, "reconnect", "backend.data.",
                               &reconnect, &has_reconnect, errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        JsonNode *n = json_object_get_member(data, unsupported[i]);

        if (n && !(JSON_NODE_HOLDS_VALUE(n) &&
                   json_node_get_value_type(n) == G_TYPE_BOOLEAN &&
                   !json_node_get_boolean(n))) {
            bd_error_setg(errp,
                          "socket chardev option '%s' is not supported by "
                          "blockd", unsupported[i]);
            return false;
        }
    }
    /* QEMU's qmp_chardev_validate_socket(), in its order */
    addr_type = json_object_get_string_member(chr->addr, "type");
    if (strcmp(addr_type, "fd") == 0 && has_reconnect) {
        bd_error_setg(errp, "'reconnect' option is incompatible with 'fd' "
                      "address type");
        return false;
    }
    if (server && has_reconnect) {
        bd_error_setg(errp, "'reconnect' option is incompatible with socket "
                      "in server listen mode");
        return false;
    }
    if (!server && json_object_has_member(data, "wait")) {
        bd_error_setg(errp, "'wait' option is incompatible with socket in "
                      "client connect mode");
        return false;
    }
    chr->server = server;

    if (!server) {
        GError *err = NULL;

        if (strcmp(addr_type, "unix") != 0 &&
            strcmp(addr_type, "inet") != 0) {
            bd_error_setg(errp, "client mode socket chardevs on '%s' "
                          "addresses are not supported by blockd "
                          "(supported: unix, inet)", addr_type);
            return false;
        }
        chr->addr_desc = describe_client_address(chr->addr);
        /* a reconnecting client never fails: it keeps trying */
        if (reconnect > 0) {
            chr->reconnect = reconnect;
            char_connect_start(chr);
            return true;
        }
        chr->conn_fd = bd_socket_connect(chr->addr, &err);
        if (chr->conn_fd < 0) {
            g_propagate_error(errp, err);
            return false;
        }
        chardev_connected(chr, chr->conn_fd);
        return true;
    }

    chr->listen_fd = bd_socket_listen(chr->addr, 1, &chr->file, errp);
    if (chr->listen_fd < 0) {
        return false;
    }
    chr->addr_desc = describe_bound_address(chr->listen_fd);
    chr->accept_what = g_strdup_printf("chardev '%s'", chr->id);
    if (wait && !wait_for_client(chr, errp)) {
        return false;
    }
    return true;
}


void bd_char_socket_close(BdChardev *chr)
{
    if (chr->connecting) {
        /* the attempt finishes on its own and closes what it made */
        chr->connecting->chr = NULL;
        chr->connecting = NULL;
    }
    if (chr->reconnect_timer) {
        g_source_remove(chr->reconnect_timer);
        chr->reconnect_timer = 0;
    }
    if (chr->hup_source) {
        g_source_remove(chr->hup_source);
        chr->hup_source = 0;
    }
    if (chr->connected) {
        close(chr->conn_fd);
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
    }
    bd_socket_file_remove(chr->file);
    if (chr->addr) {
        json_object_unref(chr->addr);
    }
    g_free(chr->addr_desc);
    g_free(chr->accept_what);
}

JsonObject *bd_chardev_socket_address(BdChardev *chr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    JsonObject *a;

    /* a client, or a server whose address cannot be read: as given */
    if (!chr->server || chr->listen_fd < 0 ||
        getsockname(chr->listen_fd, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 &&
         ss.ss_family != AF_UNIX)) {
        return json_object_ref(chr->addr);
    }
    a = json_object_new();
    if (ss.ss_family == AF_UNIX) {
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        g_autofree char *path =
            g_strndup(((struct sockaddr_un *)&ss)->sun_path, n);

        json_object_set_string_member(a, "type", "unix");
        json_object_set_string_member(a, "path", path);
        return a;
    }
    /* QEMU's socket_sockaddr_to_address_inet() */
    numeric_name(&ss, len, host, sizeof(host), serv, sizeof(serv));
    json_object_set_string_member(a, "type", "inet");
    json_object_set_string_member(a, "host", host);
    json_object_set_string_member(a, "port", serv);
    json_object_set_boolean_member(a, ss.ss_family == AF_INET ? "ipv4"
                                                              : "ipv6",
                                   true);
    return a;
}
