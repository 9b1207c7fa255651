/*
 * --chardev: the flat form (QemuOpts, "socket,id=x,path=...") turned into
 * the QAPI ChardevBackend shape chardev-add takes (see chardev-cli.h).
 */
#include <stdio.h>
#include <string.h>

#include <blockd/error.h>

#include "chardev/chardev.h"
#include "cli/chardev-cli.h"
#include "cli/keyval.h"
#include "schema/schema.h"

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
    bd_error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

static JsonObject *wrap(const char *type, JsonObject *data)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "type", type);
    json_object_set_object_member(o, "data", data);
    return o;
}

/* udp's flat options, as QEMU's qemu_chr_parse_udp() reads them. */
static bool udp_backend(JsonObject *opts, JsonObject *data, GError **errp)
{
    const char *host = json_object_get_string_member_with_default(
        opts, "host", NULL);
    const char *port = json_object_get_string_member_with_default(
        opts, "port", NULL);
    const char *laddr = json_object_get_string_member_with_default(
        opts, "localaddr", NULL);
    const char *lport = json_object_get_string_member_with_default(
        opts, "localport", NULL);
    JsonObject *remote = json_object_new();
    bool has_local = false;

    if (!host || !host[0]) {
        host = "localhost";
    }
    if (!port || !port[0]) {
        bd_error_setg(errp, "chardev: udp: remote port not specified");
        json_object_unref(remote);
        return false;
    }
    if (!lport || !lport[0]) {
        lport = "0";
    } else {
        has_local = true;
    }
    if (!laddr || !laddr[0]) {
        laddr = "";
    } else {
        has_local = true;
    }
    json_object_set_string_member(remote, "host", host);
    json_object_set_string_member(remote, "port", port);
    for (size_t i = 0; i < 2; i++) {
        const char *name = i ? "ipv6" : "ipv4";
        const char *v = json_object_get_string_member_with_default(
            opts, name, NULL);
        bool b;

        if (v) {
            if (!opts_bool(name, v, &b, errp)) {
                json_object_unref(remote);
                return false;
            }
            json_object_set_boolean_member(remote, name, b);
        }
    }
    json_object_set_object_member(data, "remote", wrap("inet", remote));
    if (has_local) {
        JsonObject *local = json_object_new();

        json_object_set_string_member(local, "host", laddr);
        json_object_set_string_member(local, "port", lport);
        json_object_set_object_member(data, "local", wrap("inet", local));
    }
    return true;
}

/*
 * The flat options of file, pipe, null, ringbuf and memory into their
 * ChardevBackend 'data', with QEMU's messages.
 */
static bool other_backend(const char *backend, JsonObject *opts,
                          JsonObject *data, GError **errp)
{
    const char *path = json_object_get_string_member_with_default(
        opts, "path", NULL);

    if (strcmp(backend, "file") == 0) {
        const char *append = json_object_get_string_member_with_default(
            opts, "append", NULL);
        bool b;

        if (!path) {
            bd_error_setg(errp, "chardev: file: no filename given");
            return false;
        }
        json_object_set_string_member(data, "out", path);
        if (append) {
            if (!opts_bool("append", append, &b, errp)) {
                return false;
            }
            json_object_set_boolean_member(data, "append", b);
        }
    } else if (strcmp(backend, "pipe") == 0) {
        if (!path) {
            bd_error_setg(errp, "chardev: pipe: no device path given");
            return false;
        }
        json_object_set_string_member(data, "device", path);
    } else if (strcmp(backend, "udp") == 0) {
        return udp_backend(opts, data, errp);
    } else if (strcmp(backend, "ringbuf") == 0 ||
               strcmp(backend, "memory") == 0) {
        const char *size = json_object_get_string_member_with_default(
            opts, "size", NULL);
        guint64 n = 0;

        if (size && (size[0] == '-' || !bd_schema_parse_size(size, &n))) {
            bd_error_setg(errp, "Parameter 'size' expects a non-negative "
                          "number below 2^64");
            return false;
        }
        /* as QEMU's command line: 0 means the default */
        if (n) {
            json_object_set_int_member(data, "size", (gint64)n);
        }
    }
    return true;
}

JsonObject *bd_chardev_opts_to_backend(JsonObject *opts, char **id_out,
                                       GError **errp)
{
    static const char *const socket_keys[] = {
        "backend", "id", "path", "host", "port", "fd", "server", "wait",
        "nodelay", "to", "ipv4", "ipv6", "abstract", "tight", "reconnect",
        NULL,
    };
    static const char *const stdio_keys[] = {
        "backend", "id", "signal", NULL,
    };
    static const char *const file_keys[] = {
        /* not "input-path": qemu-storage-daemon 7.2 refuses it */
        "backend", "id", "path", "append", NULL,
    };
    static const char *const pipe_keys[] = {
        "backend", "id", "path", NULL,
    };
    static const char *const null_keys[] = { "backend", "id", NULL };
    static const char *const udp_keys[] = {
        "backend", "id", "host", "port", "localaddr", "localport", "ipv4",
        "ipv6", NULL,
    };
    static const char *const ringbuf_keys[] = {
        "backend", "id", "size", NULL,
    };
    const char *const *keys;
    g_autoptr(GList) members = json_object_get_members(opts);
    const char *backend, *id;

    /* all values are strings in this form */
    for (GList *l = members; l; l = l->next) {
        JsonNode *n = json_object_get_member(opts, l->data);

        if (!JSON_NODE_HOLDS_VALUE(n) ||
            json_node_get_value_type(n) != G_TYPE_STRING) {
            bd_error_setg(errp,
                          "Invalid parameter type for '%s', expected: string",
                          (char *)l->data);
            return NULL;
        }
    }
    backend = json_object_get_string_member_with_default(opts, "backend",
                                                         NULL);
    id = json_object_get_string_member_with_default(opts, "id", NULL);
    if (!id) {
        bd_error_setg(errp, "chardev: no id specified");
        return NULL;
    }
    if (!backend) {
        bd_error_setg(errp, "chardev: \"%s\" missing backend", id);
        return NULL;
    }
    if (strcmp(backend, "socket") == 0) {
        keys = socket_keys;
    } else if (strcmp(backend, "stdio") == 0) {
        keys = stdio_keys;
    } else if (strcmp(backend, "file") == 0) {
        keys = file_keys;
    } else if (strcmp(backend, "pipe") == 0) {
        keys = pipe_keys;
    } else if (strcmp(backend, "null") == 0 ||
               strcmp(backend, "pty") == 0) {
        keys = null_keys;
    } else if (strcmp(backend, "udp") == 0) {
        keys = udp_keys;
    } else if (strcmp(backend, "ringbuf") == 0 ||
               strcmp(backend, "memory") == 0) {
        keys = ringbuf_keys;
    } else {
        bd_error_setg(errp, "'%s' is not a valid char driver name", backend);
        return NULL;
    }
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(keys, l->data)) {
            bd_error_setg(errp, "Invalid parameter '%s'", (char *)l->data);
            return NULL;
        }
    }

    JsonObject *data = json_object_new();
    if (strcmp(backend, "socket") != 0 && strcmp(backend, "stdio") != 0) {
        if (!other_backend(backend, opts, data, errp)) {
            json_object_unref(data);
            return NULL;
        }
        *id_out = g_strdup(id);
        return wrap(backend, data);
    }
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
    const char *addr_type, *reconnect;
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
            bd_error_setg(errp, "chardev: socket: no %s given",
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
        bd_error_setg(errp, "chardev: socket: no host given");
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
            bd_error_setg(errp, "chardev: socket: '%s' applies only to %s "
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
                bd_error_setg(errp, "Parameter '%s' expects a number",
                              addr_opts[i].name);
                goto fail;
            }
            if (n > 65535) {
                bd_error_setg(errp, "Parameter '%s' expects uint16_t",
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
    reconnect = json_object_get_string_member_with_default(opts, "reconnect",
                                                           NULL);
    if (reconnect) {
        char *end;
        gint64 n;

        errno = 0;
        n = g_ascii_strtoll(reconnect, &end, 0);
        if (errno || end == reconnect || *end) {
            bd_error_setg(errp, "Parameter 'reconnect' expects a number");
            goto fail;
        }
        json_object_set_int_member(data, "reconnect", n);
    }
    json_object_set_object_member(data, "addr", wrap(addr_type, addr_data));
    for (size_t i = 0; i < G_N_ELEMENTS(bools); i++) {
        /*
         * QEMU passes 'wait' on only when given: a client refuses it, a
         * server waits by default.
         */
        if (strcmp(bools[i], "wait") == 0 &&
            !json_object_has_member(opts, "wait")) {
            continue;
        }
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

bool bd_chardev_cli_option(const char *prog, const char *arg, bool *exit_now,
                           GError **errp)
{
    g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
    bool help = false;
    g_autoptr(JsonObject) opts =
        bd_qemu_opts_parse_full(arg, "backend", &help, warnings, errp);

    for (guint i = 0; i < warnings->len; i++) {
        fprintf(stderr, "%s: warning: %s\n", prog,
                (char *)warnings->pdata[i]);
    }
    if (opts && (help || g_strcmp0(json_object_get_string_member_with_default(
                                       opts, "backend", NULL), "help") == 0)) {
        printf("Available chardev backend types: \n");
        for (const char *const *t = bd_chardev_backend_types(); *t; t++) {
            printf("  %s\n", *t);
        }
        *exit_now = true;
        return true;
    }
    return opts && bd_chardev_new_from_opts(opts, errp);
}
