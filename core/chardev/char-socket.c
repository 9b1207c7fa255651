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

    if (!chr->connected) {
        return g_strdup_printf("disconnected:%s", chr->addr_desc);
    }
    if (getsockname(chr->conn_fd, (struct sockaddr *)&local, &llen) < 0) {
        return g_strdup(chr->addr_desc);
    }
    if (local.ss_family == AF_UNIX) {
        /* an abstract name starts with NUL: QEMU shows it empty */
        return g_strdup_printf("unix:%s,server=on",
                               ((struct sockaddr_un *)&local)->sun_path);
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
    return g_strdup_printf("tcp:%s%s%s:%s,server=on <-> %s%s%s:%s",
                           v6 ? "[" : "", lhost, v6 ? "]" : "", lserv,
                           v6 ? "[" : "", phost, v6 ? "]" : "", pserv);
}

/* ---- connections ---- */

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

bool bd_char_socket_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    static const char *const unsupported[] = {
        "tls-creds", "tls-authz", "telnet", "tn3270", "websocket",
        "logfile",
    };
    JsonObject *addr;
    bool server = true, wait = true;

    addr = bd_chardev_obj_member(data, "addr", "backend.data.", true, errp);
    if (!addr || !parse_socket_addr(chr, addr, errp)) {
        return false;
    }
    if (!bd_chardev_bool_member(data, "server", "backend.data.", &server,
                                errp) ||
        !bd_chardev_bool_member(data, "wait", "backend.data.", &wait, errp) ||
        !bd_chardev_bool_member(data, "nodelay", "backend.data.",
                                &chr->nodelay, errp)) {
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
    if (!server) {
        bd_error_setg(errp, "client mode socket chardevs (server=off) are "
                      "not supported by blockd");
        return false;
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
