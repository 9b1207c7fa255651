/*
 * Character devices: the registry, what every backend shares (frontends,
 * connections, the QAPI shape) and chardev creation (see chardev.h).
 * The backends are char-socket.c and char-stdio.c; the flat --chardev
 * form is cli/chardev-cli.c.
 */
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"
#include "chardev/chardev.h"

static GPtrArray *chardevs;     /* of BdChardev *, creation order */

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

const char *bd_chardev_qom_type(BdChardev *chr)
{
    static const struct {
        const char *type, *qom;
    } names[] = {
        { "socket", "chardev-socket" }, { "stdio", "chardev-stdio" },
        { "file", "chardev-file" }, { "pipe", "chardev-pipe" },
        { "null", "chardev-null" }, { "ringbuf", "chardev-ringbuf" },
        { "memory", "chardev-memory" }, { "pty", "chardev-pty" },
        { "udp", "chardev-udp" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (strcmp(chr->type, names[i].type) == 0) {
            return names[i].qom;
        }
    }
    return "chardev";
}

bool bd_chardev_is_socket(BdChardev *chr)
{
    return chr->kind == CHARDEV_SOCKET;
}

bool bd_chardev_is_connected(BdChardev *chr)
{
    return chr->connected;
}

bool bd_chardev_supports_oob(BdChardev *chr)
{
    return chr->kind != CHARDEV_RINGBUF;
}

bool bd_chardev_can_serve_monitor(BdChardev *chr)
{
    return chr->kind != CHARDEV_UDP;
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

bool bd_chardev_kind_in_use(ChardevKind kind)
{
    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        BdChardev *other = g_ptr_array_index(chardevs, i);

        if (other->kind == kind) {
            return true;
        }
    }
    return false;
}

char *bd_chardev_filename(BdChardev *chr)
{
    if (chr->kind == CHARDEV_SOCKET) {
        return bd_char_socket_filename(chr);
    }
    if (chr->kind == CHARDEV_PTY) {
        return g_strdup(chr->pty_filename);
    }
    /* QEMU's other backends show their type: "stdio", "file", ... */
    return g_strdup(chr->type);
}

const char *bd_chardev_pty_path(BdChardev *chr)
{
    return chr->kind == CHARDEV_PTY ? chr->pty_path : NULL;
}

/* ---- frontends and connections ---- */

void bd_chardev_disconnect(BdChardev *chr)
{
    if (!chr->connected) {
        return;
    }
    chr->connected = false;
    if (chr->kind == CHARDEV_PTY) {
        /* the slave side was closed: wait for the next user */
        bd_char_pty_watch(chr);
        return;
    }
    if (chr->kind != CHARDEV_SOCKET) {
        /* the input has ended for good: there is no next client */
        chr->input_eof = true;
        return;
    }
    close(chr->conn_fd);
    chr->conn_fd = -1;
    bd_char_socket_disconnected(chr);
}

bool bd_chardev_attach(BdChardev *chr, const BdChardevFrontendOps *ops,
                       void *opaque, GError **errp)
{
    if (chr->ops) {
        bd_error_setg(errp, "Device '%s' is in use", chr->id);
        return false;
    }
    chr->ops = ops;
    chr->opaque = opaque;
    if (chr->kind == CHARDEV_SOCKET) {
        bd_char_socket_attached(chr);
    }
    if (chr->kind == CHARDEV_PTY) {
        bd_char_pty_watch(chr);
        return true;
    }
    if (chr->connected) {
        if (chr->kind == CHARDEV_SOCKET) {
            ops->open(opaque, chr->conn_fd, chr->conn_fd);
        } else {
            ops->open(opaque, chr->in_fd, chr->out_fd);
        }
    } else {
        bd_char_socket_listen_watch(chr);
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
        /* without a frontend nobody accepts: see
         * bd_char_socket_listen_watch */
    }
    if (chr->kind == CHARDEV_PTY) {
        chr->connected = false;
        bd_char_pty_unwatch(chr);
    }
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
            bd_error_setg(errp, "Parameter '%s%s' is missing", path, name);
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
    bd_error_setg(errp,
                  "Invalid parameter type for '%s%s', expected: %s", path,
                  name, tname);
    return NULL;
}

/* A string member, or NULL (with @errp set when that is an error). */
const char *bd_chardev_str_member(JsonObject *obj, const char *name,
                                  const char *path, bool required,
                                  GError **errp)
{
    JsonNode *n = member(obj, name, path, JSON_NODE_VALUE, G_TYPE_STRING,
                         required, errp);

    return n ? json_node_get_string(n) : NULL;
}

/* A boolean member; *@val is left alone when it is absent. */
bool bd_chardev_bool_member(JsonObject *obj, const char *name,
                            const char *path, bool *val, GError **errp)
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

bool bd_chardev_int_member(JsonObject *obj, const char *name,
                           const char *path, gint64 *val, bool *present,
                           GError **errp)
{
    GError *err = NULL;
    JsonNode *n = member(obj, name, path, JSON_NODE_VALUE, G_TYPE_INT64,
                         false, &err);

    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    *present = n != NULL;
    if (n) {
        *val = json_node_get_int(n);
    }
    return true;
}

JsonObject *bd_chardev_obj_member(JsonObject *obj, const char *name,
                                  const char *path, bool required,
                                  GError **errp)
{
    JsonNode *n = member(obj, name, path, JSON_NODE_OBJECT, G_TYPE_INVALID,
                         required, errp);

    return n ? json_node_get_object(n) : NULL;
}

/* ---- creating and removing ---- */

static void chardev_free(BdChardev *chr)
{
    if (chr->listen_source) {
        g_source_remove(chr->listen_source);
    }
    if (chr->retry_source) {
        g_source_remove(chr->retry_source);
    }
    if (chr->kind == CHARDEV_SOCKET) {
        /* also stops reconnecting and forgets an attempt in flight */
        bd_char_socket_close(chr);
    } else if (chr->kind == CHARDEV_FD) {
        if (chr->in_fd >= 0 && chr->in_fd != chr->out_fd) {
            close(chr->in_fd);
        }
        if (chr->out_fd >= 0) {
            close(chr->out_fd);
        }
    } else if (chr->kind == CHARDEV_RINGBUF) {
        bd_char_ringbuf_close(chr);
    } else if (chr->kind == CHARDEV_PTY) {
        bd_char_pty_close(chr);
    } else if (chr->kind == CHARDEV_UDP && chr->in_fd >= 0) {
        close(chr->in_fd);
    }
    g_free(chr->id);
    g_free(chr);
}

/* null: never connected, so its frontend never hears anything. */
static bool null_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    return true;
}

BdChardev *bd_chardev_new(const char *id, JsonObject *backend, GError **errp)
{
    static const struct {
        const char *name;
        ChardevKind kind;
        bool (*open)(BdChardev *chr, JsonObject *data, GError **errp);
    } backends[] = {
        { "socket", CHARDEV_SOCKET, bd_char_socket_open },
        { "stdio", CHARDEV_STDIO, bd_char_stdio_open },
        { "file", CHARDEV_FD, bd_char_file_open },
        { "pipe", CHARDEV_FD, bd_char_pipe_open },
        { "null", CHARDEV_NULL, null_open },
        { "ringbuf", CHARDEV_RINGBUF, bd_char_ringbuf_open },
        { "memory", CHARDEV_RINGBUF, bd_char_ringbuf_open },
        { "pty", CHARDEV_PTY, bd_char_pty_open },
        { "udp", CHARDEV_UDP, bd_char_udp_open },
    };
    /* the rest of QEMU's backends */
    static const char *const known[] = {
        "serial", "parallel", "mux", "msmouse", "wctablet",
        "braille", "testdev", "console", "spicevmc", "spiceport",
        "qemu-vdagent", "dbus", "vc",
    };
    BdChardev *chr;
    const char *type;
    JsonObject *data = NULL;
    size_t i;
    bool ok;

    if (!chardevs) {
        chardevs = g_ptr_array_new();
    }
    if (bd_chardev_find(id)) {
        bd_error_setg(errp, "Chardev with id '%s' already exists", id);
        return NULL;
    }
    type = bd_chardev_str_member(backend, "type", "backend.", true, errp);
    if (!type) {
        return NULL;
    }
    /* every branch of the legacy ChardevBackend union wraps 'data' */
    data = bd_chardev_obj_member(backend, "data", "backend.", true, errp);
    if (!data) {
        return NULL;
    }
    for (i = 0; i < G_N_ELEMENTS(backends); i++) {
        if (strcmp(type, backends[i].name) == 0) {
            break;
        }
    }
    if (i == G_N_ELEMENTS(backends)) {
        for (size_t j = 0; j < G_N_ELEMENTS(known); j++) {
            if (strcmp(type, known[j]) == 0) {
                bd_error_setg(errp, "chardev backend '%s' is not supported by "
                              "blockd (supported: file, memory, null, pipe, "
                              "pty, ringbuf, socket, stdio, udp)", type);
                return NULL;
            }
        }
        bd_error_setg(errp,
                      "Parameter 'backend.type' does not accept value '%s'",
                      type);
        return NULL;
    }
    /* ChardevCommon: a log of the traffic is not written by blockd */
    if (json_object_has_member(data, "logfile")) {
        bd_error_setg(errp, "chardev option 'logfile' is not supported by "
                      "blockd");
        return NULL;
    }

    chr = g_new0(BdChardev, 1);
    chr->id = g_strdup(id);
    chr->type = backends[i].name;
    chr->kind = backends[i].kind;
    chr->listen_fd = -1;
    chr->conn_fd = -1;
    chr->in_fd = -1;
    chr->out_fd = -1;
    chr->ring_rd = -1;
    ok = backends[i].open(chr, data, errp);
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
        bd_error_setg(errp, "Chardev '%s' not found", id);
        return false;
    }
    if (chr->ops) {
        bd_error_setg(errp, "Chardev '%s' is busy", id);
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

const char *const *bd_chardev_backend_types(void)
{
    /* qemu-storage-daemon's order, less what blockd does not have */
    static const char *const types[] = {
        "pty", "udp", "memory", "file", "socket", "stdio", "ringbuf",
        "null", "pipe", NULL,
    };

    return types;
}

BdChardev *bd_chardev_change(const char *id, JsonObject *backend,
                             GError **errp)
{
    BdChardev *chr = bd_chardev_find(id);
    GError *err = NULL;

    if (!chr) {
        bd_error_setg(errp, "Chardev '%s' does not exist", id);
        return NULL;
    }
    /* a monitor, the only frontend, cannot move to another backend */
    if (chr->ops) {
        bd_error_setg(errp, "Chardev user does not support chardev hotswap");
        return NULL;
    }
    g_ptr_array_remove(chardevs, chr);
    chardev_free(chr);
    /* what QEMU's chardev-add says, which it calls here */
    chr = bd_chardev_new(id, backend, &err);
    if (!chr) {
        bd_error_setg(errp, "Failed to add chardev '%s': %s", id,
                      err->message);
        g_error_free(err);
    }
    return chr;
}
