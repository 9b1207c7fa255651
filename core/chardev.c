/*
 * Character devices: registry, socket and stdio backends (see chardev.h).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include <linux/vm_sockets.h>

#include <blockd/error.h>
#include <blockd/socket.h>

#include "chardev.h"
#include "daemonize.h"

typedef enum ChardevKind {
    CHARDEV_SOCKET,
    CHARDEV_STDIO,
} ChardevKind;

struct BdChardev {
    char *id;
    ChardevKind kind;

    /* socket */
    JsonObject *addr;       /* flat SocketAddress */
    char *addr_desc;        /* the bound address, as query-chardev says */
    bool nodelay;
    int listen_fd;
    guint listen_source;
    guint retry_source;     /* out of descriptors: accept again later */
    char *accept_what;      /* names the chardev in bd_socket_accept() */
    int conn_fd;
    BdSocketFile *file;     /* a UNIX socket file we made, or NULL */

    /* stdio */
    bool stdio_eof;

    bool connected;
    const BdChardevFrontendOps *ops;
    void *opaque;
};

static GPtrArray *chardevs;     /* of BdChardev *, creation order */

static void chardev_listen_watch(BdChardev *chr);

static void set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    fl = fcntl(fd, F_GETFD);
    if (fl >= 0) {
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}

BdChardev *bd_chardev_find(const char *id)
{
    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        BdChardev *chr = g_ptr_array_index(chardevs, i);

        if (strcmp(chr->id, id) == 0) {
            return chr;
        }
    }
    return NULL;
}

const char *bd_chardev_id(BdChardev *chr)
{
    return chr->id;
}

bool bd_chardev_has_frontend(BdChardev *chr)
{
    return chr->ops != NULL;
}

GPtrArray *bd_chardev_ids(void)
{
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);

    /* newest first, as qemu-storage-daemon lists them */
    for (guint i = chardevs ? chardevs->len : 0; i-- > 0;) {
        BdChardev *chr = g_ptr_array_index(chardevs, i);

        g_ptr_array_add(ids, g_strdup(chr->id));
    }
    return ids;
}

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

char *bd_chardev_filename(BdChardev *chr)
{
    struct sockaddr_storage local, peer;
    socklen_t llen = sizeof(local), plen = sizeof(peer);
    char lhost[NI_MAXHOST], lserv[NI_MAXSERV];
    char phost[NI_MAXHOST], pserv[NI_MAXSERV];
    bool v6;

    if (chr->kind == CHARDEV_STDIO) {
        return g_strdup("stdio");
    }
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
    chardev_listen_watch(chr);
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

static void chardev_listen_watch(BdChardev *chr)
{
    if (chr->kind == CHARDEV_SOCKET && !chr->connected && chr->ops &&
        !chr->listen_source && !chr->retry_source && chr->listen_fd >= 0) {
        chr->listen_source = g_unix_fd_add(chr->listen_fd, G_IO_IN,
                                           chardev_accept_ready, chr);
    }
}

void bd_chardev_disconnect(BdChardev *chr)
{
    if (!chr->connected) {
        return;
    }
    chr->connected = false;
    if (chr->kind == CHARDEV_STDIO) {
        /* stdin has ended for good: there is no next client */
        chr->stdio_eof = true;
        return;
    }
    close(chr->conn_fd);
    chr->conn_fd = -1;
    chardev_listen_watch(chr);
}

bool bd_chardev_attach(BdChardev *chr, const BdChardevFrontendOps *ops,
                       void *opaque, GError **errp)
{
    if (chr->ops) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Device '%s' is in use", chr->id);
        return false;
    }
    chr->ops = ops;
    chr->opaque = opaque;
    if (chr->connected) {
        ops->open(opaque, chr->kind == CHARDEV_STDIO ? STDIN_FILENO
                                                      : chr->conn_fd,
                  chr->kind == CHARDEV_STDIO ? STDOUT_FILENO
                                             : chr->conn_fd);
    } else {
        chardev_listen_watch(chr);
    }
    return true;
}

void bd_chardev_detach(BdChardev *chr)
{
    chr->ops = NULL;
    chr->opaque = NULL;
    if (chr->listen_source) {
        g_source_remove(chr->listen_source);
        chr->listen_source = 0;
    }
    if (chr->retry_source) {
        g_source_remove(chr->retry_source);
        chr->retry_source = 0;
    }
    if (chr->kind == CHARDEV_SOCKET) {
        bd_chardev_disconnect(chr);
        /* without a frontend nobody accepts: see chardev_listen_watch */
    }
}

/* ---- opening ---- */

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
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Failed to accept a connection: %s",
                        g_strerror(errno));
            return false;
        }
        poll(&pfd, 1, -1);
    }
}

static void chardev_free(BdChardev *chr)
{
    if (chr->listen_source) {
        g_source_remove(chr->listen_source);
    }
    if (chr->retry_source) {
        g_source_remove(chr->retry_source);
    }
    if (chr->kind == CHARDEV_SOCKET) {
        if (chr->connected) {
            close(chr->conn_fd);
        }
        if (chr->listen_fd >= 0) {
            close(chr->listen_fd);
        }
    }
    bd_socket_file_remove(chr->file);
    if (chr->addr) {
        json_object_unref(chr->addr);
    }
    g_free(chr->addr_desc);
    g_free(chr->accept_what);
    g_free(chr->id);
    g_free(chr);
}

/* ---- reading the QAPI shape, without trusting it to be validated ---- */

static JsonNode *member(JsonObject *obj, const char *name, const char *path,
                        JsonNodeType type, GType vtype, bool required,
                        GError **errp)
{
    JsonNode *n = json_object_get_member(obj, name);
    const char *tname;

    if (!n) {
        if (required) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Parameter '%s%s' is missing", path, name);
        }
        return NULL;
    }
    if (json_node_get_node_type(n) == type &&
        (type != JSON_NODE_VALUE || json_node_get_value_type(n) == vtype)) {
        return n;
    }
    tname = type == JSON_NODE_OBJECT ? "object" :
            vtype == G_TYPE_BOOLEAN ? "boolean" :
            vtype == G_TYPE_INT64 ? "integer" : "string";
    g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                "Invalid parameter type for '%s%s', expected: %s", path,
                name, tname);
    return NULL;
}

/* A string member, or NULL (with @errp set when that is an error). */
static const char *str_member(JsonObject *obj, const char *name,
                              const char *path, bool required,
                              GError **errp)
{
    JsonNode *n = member(obj, name, path, JSON_NODE_VALUE, G_TYPE_STRING,
                         required, errp);

    return n ? json_node_get_string(n) : NULL;
}

/* A boolean member; *@val is left alone when it is absent. */
static bool bool_member(JsonObject *obj, const char *name, const char *path,
                        bool *val, GError **errp)
{
    GError *err = NULL;
    JsonNode *n = member(obj, name, path, JSON_NODE_VALUE, G_TYPE_BOOLEAN,
                         false, &err);

    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    if (n) {
        *val = json_node_get_boolean(n);
    }
    return true;
}

static JsonObject *obj_member(JsonObject *obj, const char *name,
                              const char *path, bool required,
                              GError **errp)
{
    JsonNode *n = member(obj, name, path, JSON_NODE_OBJECT, G_TYPE_INVALID,
                         required, errp);

    return n ? json_node_get_object(n) : NULL;
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

    type = str_member(addr, "type", "backend.data.addr.", true, errp);
    if (!type) {
        return false;
    }
    data = obj_member(addr, "data", "backend.data.addr.", true, errp);
    if (!data) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        if (strcmp(type, required[i][0]) != 0) {
            continue;
        }
        for (size_t j = 1; j < 3 && required[i][j]; j++) {
            if (!str_member(data, required[i][j], "backend.data.addr.data.",
                            true, errp)) {
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
    g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                "Parameter 'backend.data.addr.type' does not accept "
                "value '%s'", type);
    return false;
}

static bool open_socket(BdChardev *chr, JsonObject *data, GError **errp)
{
    static const char *const unsupported[] = {
        "tls-creds", "tls-authz", "telnet", "tn3270", "websocket",
        "logfile",
    };
    JsonObject *addr;
    bool server = true, wait = true;

    addr = obj_member(data, "addr", "backend.data.", true, errp);
    if (!addr || !parse_socket_addr(chr, addr, errp)) {
        return false;
    }
    if (!bool_member(data, "server", "backend.data.", &server, errp) ||
        !bool_member(data, "wait", "backend.data.", &wait, errp) ||
        !bool_member(data, "nodelay", "backend.data.", &chr->nodelay,
                     errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        JsonNode *n = json_object_get_member(data, unsupported[i]);

        if (n && !(JSON_NODE_HOLDS_VALUE(n) &&
                   json_node_get_value_type(n) == G_TYPE_BOOLEAN &&
                   !json_node_get_boolean(n))) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "socket chardev option '%s' is not supported by "
                        "blockd", unsupported[i]);
            return false;
        }
    }
    if (!server) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "client mode socket chardevs (server=off) are "
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

static bool open_stdio(BdChardev *chr, JsonObject *data, GError **errp)
{
    bool sig = true;

    if (bd_daemonize_active()) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "cannot use stdio with -daemonize");
        return false;
    }
    for (guint i = 0; i < chardevs->len; i++) {
        BdChardev *other = g_ptr_array_index(chardevs, i);

        if (other->kind == CHARDEV_STDIO) {
            g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                                "cannot use stdio by multiple character "
                                "devices");
            return false;
        }
    }
    /* 'signal' is accepted; blockd never changes the terminal's modes */
    if (data && !bool_member(data, "signal", "backend.data.", &sig, errp)) {
        return false;
    }
    chr->kind = CHARDEV_STDIO;
    set_nonblock_cloexec(STDIN_FILENO);
    set_nonblock_cloexec(STDOUT_FILENO);
    chr->connected = true;
    return true;
}

BdChardev *bd_chardev_new(const char *id, JsonObject *backend, GError **errp)
{
    static const char *const known[] = {
        "file", "serial", "parallel", "pipe", "udp", "pty", "null", "mux",
        "msmouse", "wctablet", "braille", "testdev", "console",
        "spicevmc", "spiceport", "qemu-vdagent", "dbus", "vc", "ringbuf",
        "memory",
    };
    BdChardev *chr;
    const char *type;
    JsonObject *data = NULL;
    bool ok;

    if (!chardevs) {
        chardevs = g_ptr_array_new();
    }
    if (bd_chardev_find(id)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Chardev with id '%s' already exists", id);
        return NULL;
    }
    type = str_member(backend, "type", "backend.", true, errp);
    if (!type) {
        return NULL;
    }
    /* every branch of the legacy ChardevBackend union wraps 'data' */
    data = obj_member(backend, "data", "backend.", true, errp);
    if (!data) {
        return NULL;
    }
    if (strcmp(type, "socket") != 0 && strcmp(type, "stdio") != 0) {
        for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
            if (strcmp(type, known[i]) == 0) {
                g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "chardev backend '%s' is not supported by "
                            "blockd (supported: socket, stdio)", type);
                return NULL;
            }
        }
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Parameter 'backend.type' does not accept value '%s'",
                    type);
        return NULL;
    }

    chr = g_new0(BdChardev, 1);
    chr->id = g_strdup(id);
    chr->listen_fd = -1;
    chr->conn_fd = -1;
    if (strcmp(type, "socket") == 0) {
        chr->kind = CHARDEV_SOCKET;
        ok = open_socket(chr, data, errp);
    } else {
        ok = open_stdio(chr, data, errp);
    }
    if (!ok) {
        chardev_free(chr);
        return NULL;
    }
    g_ptr_array_add(chardevs, chr);
    return chr;
}

bool bd_chardev_remove(const char *id, GError **errp)
{
    BdChardev *chr = bd_chardev_find(id);

    if (!chr) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Chardev '%s' not found", id);
        return false;
    }
    if (chr->ops) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Chardev '%s' is busy", id);
        return false;
    }
    g_ptr_array_remove(chardevs, chr);
    chardev_free(chr);
    return true;
}

void bd_chardev_remove_all(void)
{
    while (chardevs && chardevs->len) {
        BdChardev *chr = g_ptr_array_index(chardevs, chardevs->len - 1);

        g_ptr_array_remove_index(chardevs, chardevs->len - 1);
        chardev_free(chr);
    }
    g_clear_pointer(&chardevs, g_ptr_array_unref);
}

/* ---- the flat --chardev form ---- */

/* QemuOpts' booleans. */
static bool opts_bool(const char *name, const char *value, bool *out,
                      GError **errp)
{
    if (!strcmp(value, "on") || !strcmp(value, "yes") ||
        !strcmp(value, "true") || !strcmp(value, "y")) {
        *out = true;
        return true;
    }
    if (!strcmp(value, "off") || !strcmp(value, "no") ||
        !strcmp(value, "false") || !strcmp(value, "n")) {
        *out = false;
        return true;
    }
    g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

static JsonObject *wrap(const char *type, JsonObject *data)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "type", type);
    json_object_set_object_member(o, "data", data);
    return o;
}

JsonObject *bd_chardev_opts_to_backend(JsonObject *opts, char **id_out,
                                       GError **errp)
{
    static const char *const socket_keys[] = {
        "backend", "id", "path", "host", "port", "fd", "server", "wait",
        "nodelay", "to", "ipv4", "ipv6", "abstract", "tight", NULL,
    };
    static const char *const stdio_keys[] = {
        "backend", "id", "signal", NULL,
    };
    const char *const *keys;
    g_autoptr(GList) members = json_object_get_members(opts);
    const char *backend, *id;

    /* all values are strings in this form */
    for (GList *l = members; l; l = l->next) {
        JsonNode *n = json_object_get_member(opts, l->data);

        if (!JSON_NODE_HOLDS_VALUE(n) ||
            json_node_get_value_type(n) != G_TYPE_STRING) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Invalid parameter type for '%s', expected: string",
                        (char *)l->data);
            return NULL;
        }
    }
    backend = json_object_get_string_member_with_default(opts, "backend",
                                                         NULL);
    id = json_object_get_string_member_with_default(opts, "id", NULL);
    if (!id) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "chardev: no id specified");
        return NULL;
    }
    if (!backend) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "chardev: \"%s\" missing backend", id);
        return NULL;
    }
    if (strcmp(backend, "socket") == 0) {
        keys = socket_keys;
    } else if (strcmp(backend, "stdio") == 0) {
        keys = stdio_keys;
    } else {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "'%s' is not a valid char driver name", backend);
        return NULL;
    }
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(keys, l->data)) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Invalid parameter '%s'", (char *)l->data);
            return NULL;
        }
    }

    JsonObject *data = json_object_new();
    if (strcmp(backend, "stdio") == 0) {
        const char *sig = json_object_get_string_member_with_default(
            opts, "signal", NULL);
        bool b;

        if (sig) {
            if (!opts_bool("signal", sig, &b, errp)) {
                json_object_unref(data);
                return NULL;
            }
            json_object_set_boolean_member(data, "signal", b);
        }
        *id_out = g_strdup(id);
        return wrap("stdio", data);
    }

    const char *path = json_object_get_string_member_with_default(
        opts, "path", NULL);
    const char *host = json_object_get_string_member_with_default(
        opts, "host", NULL);
    const char *port = json_object_get_string_member_with_default(
        opts, "port", NULL);
    const char *fd = json_object_get_string_member_with_default(
        opts, "fd", NULL);
    JsonObject *addr_data = json_object_new();
    const char *addr_type;
    static const char *const bools[] = { "server", "wait", "nodelay" };
    /* QemuOpts defaults: a client socket that waits */
    bool values[] = { false, true, false };

    /* which address options each kind takes (QEMU ignores the others) */
    static const struct {
        const char *name;
        const char *applies_to;
        bool boolean;
    } addr_opts[] = {
        { "to", "inet", false },
        { "ipv4", "inet", true },
        { "ipv6", "inet", true },
        { "abstract", "unix", true },
        { "tight", "unix", true },
    };

    if (path) {
        addr_type = "unix";
        json_object_set_string_member(addr_data, "path", path);
    } else if (host || port) {
        if (!host || !port) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "chardev: socket: no %s given",
                        host ? "port" : "host");
            goto fail;
        }
        addr_type = "inet";
        json_object_set_string_member(addr_data, "host", host);
        json_object_set_string_member(addr_data, "port", port);
    } else if (fd) {
        addr_type = "fd";
        json_object_set_string_member(addr_data, "str", fd);
    } else {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "chardev: socket: no host given");
        goto fail;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(addr_opts); i++) {
        const char *v = json_object_get_string_member_with_default(
            opts, addr_opts[i].name, NULL);
        bool b;

        if (!v) {
            continue;
        }
        if (strcmp(addr_type, addr_opts[i].applies_to) != 0) {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "chardev: socket: '%s' applies only to %s "
                        "addresses", addr_opts[i].name,
                        strcmp(addr_opts[i].applies_to, "inet") == 0
                        ? "host/port" : "path");
            goto fail;
        }
        if (addr_opts[i].boolean) {
            if (!opts_bool(addr_opts[i].name, v, &b, errp)) {
                goto fail;
            }
            json_object_set_boolean_member(addr_data, addr_opts[i].name, b);
        } else {
            char *end;
            guint64 n;

            errno = 0;
            n = g_ascii_strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-') {
                g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "Parameter '%s' expects a number",
                            addr_opts[i].name);
                goto fail;
            }
            if (n > 65535) {
                g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "Parameter '%s' expects uint16_t",
                            addr_opts[i].name);
                goto fail;
            }
            json_object_set_int_member(addr_data, addr_opts[i].name,
                                       (gint64)n);
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bools); i++) {
        const char *v = json_object_get_string_member_with_default(
            opts, bools[i], NULL);

        if (v && !opts_bool(bools[i], v, &values[i], errp)) {
            goto fail;
        }
    }
    json_object_set_object_member(data, "addr", wrap(addr_type, addr_data));
    for (size_t i = 0; i < G_N_ELEMENTS(bools); i++) {
        json_object_set_boolean_member(data, bools[i], values[i]);
    }
    *id_out = g_strdup(id);
    return wrap("socket", data);

fail:
    json_object_unref(addr_data);
    json_object_unref(data);
    return NULL;
}

BdChardev *bd_chardev_new_from_opts(JsonObject *opts, GError **errp)
{
    g_autofree char *id = NULL;
    g_autoptr(JsonObject) backend = bd_chardev_opts_to_backend(opts, &id,
                                                               errp);

    if (!backend) {
        return NULL;
    }
    return bd_chardev_new(id, backend, errp);
}

const char *const *bd_chardev_backend_types(void)
{
    static const char *const types[] = { "socket", "stdio", NULL };

    return types;
}
