/*
 * QMP glue of the character devices: chardev-add, chardev-remove,
 * chardev-change, chardev-send-break, ringbuf-write, ringbuf-read,
 * query-chardev, query-chardev-backends.
 */
#include <string.h>

#include <blockd/error.h>

#include "chardev/chardev.h"
#include "qmp/qmp-dispatch.h"

/*
 * Handlers read their arguments defensively: until the schema engine's
 * checker is installed they arrive unvalidated.
 */
static const char *arg_string(JsonObject *args, const char *name,
                              GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n) {
        bd_error_setg(errp, "Parameter '%s' is missing", name);
        return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        bd_error_setg(errp,
                      "Invalid parameter type for '%s', expected: string",
                      name);
        return NULL;
    }
    return json_node_get_string(n);
}

/* ChardevReturn: only a pty backend has something to say. */
static JsonNode *chardev_return(BdChardev *chr)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    const char *pty = bd_chardev_pty_path(chr);

    if (pty) {
        json_object_set_string_member(o, "pty", pty);
    }
    json_node_take_object(n, o);
    return n;
}

/* The 'backend' argument, an object. */
static JsonObject *arg_backend(JsonObject *args, GError **errp)
{
    JsonNode *backend = json_object_get_member(args, "backend");

    if (!backend) {
        bd_error_setg(errp, "Parameter 'backend' is missing");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_OBJECT(backend)) {
        bd_error_setg(errp, "Invalid parameter type for 'backend', "
                      "expected: object");
        return NULL;
    }
    return json_node_get_object(backend);
}

static bool qmp_chardev_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *id = arg_string(args, "id", errp);
    JsonNode *backend;
    BdChardev *chr;
    GError *err = NULL;

    if (!id) {
        return false;
    }
    backend = json_object_get_member(args, "backend");
    if (!backend) {
        bd_error_setg(errp, "Parameter 'backend' is missing");
        return false;
    }
    if (!JSON_NODE_HOLDS_OBJECT(backend)) {
        bd_error_setg(errp, "Invalid parameter type for 'backend', "
                      "expected: object");
        return false;
    }
    if (bd_chardev_find(id)) {
        bd_error_setg(errp, "Chardev with id '%s' already exists", id);
        return false;
    }
    chr = bd_chardev_new(id, json_node_get_object(backend), &err);
    if (!chr) {
        bd_error_setg(errp,
                      "Failed to add chardev '%s': %s", id, err->message);
        g_error_free(err);
        return false;
    }
    *ret = chardev_return(chr);
    return true;
}

static bool qmp_chardev_remove(JsonObject *args, JsonNode **ret,
                               GError **errp)
{
    const char *id = arg_string(args, "id", errp);

    return id && bd_chardev_remove(id, errp);
}

static bool qmp_chardev_change(JsonObject *args, JsonNode **ret,
                               GError **errp)
{
    const char *id = arg_string(args, "id", errp);
    JsonObject *backend;
    BdChardev *chr;

    if (!id || !(backend = arg_backend(args, errp))) {
        return false;
    }
    chr = bd_chardev_change(id, backend, errp);
    if (!chr) {
        return false;
    }
    *ret = chardev_return(chr);
    return true;
}

static bool qmp_chardev_send_break(JsonObject *args, JsonNode **ret,
                                   GError **errp)
{
    const char *id = arg_string(args, "id", errp);

    if (!id) {
        return false;
    }
    if (!bd_chardev_find(id)) {
        bd_error_setg(errp, "Chardev '%s' not found", id);
        return false;
    }
    /* a break means something to serial frontends only; monitors ignore it */
    return true;
}

/*
 * The ringbuf commands' 'device': a ringbuf or memory chardev, else
 * QEMU's messages.
 */
static BdChardev *ringbuf_device(JsonObject *args, GError **errp)
{
    const char *device = arg_string(args, "device", errp);
    BdChardev *chr;

    if (!device) {
        return NULL;
    }
    chr = bd_chardev_find(device);
    if (!chr) {
        bd_error_setg(errp, "Device '%s' not found", device);
        return NULL;
    }
    if (!bd_chardev_is_ringbuf(chr)) {
        bd_error_setg(errp, "%s is not a ringbuf device", device);
        return NULL;
    }
    return chr;
}

/* 'format': true for base64, false for utf8 (the default). */
static bool arg_base64(JsonObject *args, bool *base64, GError **errp)
{
    JsonNode *n = json_object_get_member(args, "format");
    const char *f;

    *base64 = false;
    if (!n) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        bd_error_setg(errp, "Invalid parameter type for 'format', "
                      "expected: string");
        return false;
    }
    f = json_node_get_string(n);
    if (strcmp(f, "base64") == 0) {
        *base64 = true;
    } else if (strcmp(f, "utf8") != 0) {
        bd_error_setg(errp, "Parameter 'format' does not accept value '%s'",
                      f);
        return false;
    }
    return true;
}

static bool qmp_ringbuf_write(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    /* QEMU's qbase64_decode() takes these and nothing else */
    static const char base64_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        "0123456789+/=\n";
    BdChardev *chr = ringbuf_device(args, errp);
    const char *data;
    bool base64;

    if (!chr || !(data = arg_string(args, "data", errp)) ||
        !arg_base64(args, &base64, errp)) {
        return false;
    }
    if (base64) {
        g_autofree guint8 *bytes = NULL;
        gsize len;

        if (strspn(data, base64_chars) != strlen(data)) {
            bd_error_setg(errp, "Base64 data contains invalid characters");
            return false;
        }
        bytes = g_base64_decode(data, &len);
        bd_chardev_ringbuf_write(chr, bytes, len);
    } else {
        /* the string's bytes up to its NUL, as QEMU writes them */
        bd_chardev_ringbuf_write(chr, (const guint8 *)data, strlen(data));
    }
    return true;
}

static bool qmp_ringbuf_read(JsonObject *args, JsonNode **ret,
                             GError **errp)
{
    BdChardev *chr = ringbuf_device(args, errp);
    JsonNode *n;
    gint64 size;
    size_t count;
    g_autofree guint8 *buf = NULL;
    bool base64;

    if (!chr) {
        return false;
    }
    n = json_object_get_member(args, "size");
    if (!n) {
        bd_error_setg(errp, "Parameter 'size' is missing");
        return false;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_INT64) {
        bd_error_setg(errp, "Invalid parameter type for 'size', "
                      "expected: integer");
        return false;
    }
    size = json_node_get_int(n);
    if (size <= 0) {
        bd_error_setg(errp, "size must be greater than zero");
        return false;
    }
    if (!arg_base64(args, &base64, errp)) {
        return false;
    }
    count = bd_chardev_ringbuf_count(chr);
    if ((guint64)size < count) {
        count = (size_t)size;
    }
    buf = g_malloc(count + 1);
    count = bd_chardev_ringbuf_read(chr, buf, count);
    *ret = json_node_new(JSON_NODE_VALUE);
    if (base64) {
        g_autofree char *text = g_base64_encode(buf, count);

        json_node_set_string(*ret, text);
    } else {
        /*
         * QEMU returns the bytes as they are, up to the first NUL: a
         * character cut at either end, or any byte that is not UTF-8,
         * comes out of the JSON writer as U+FFFD.
         */
        buf[count] = 0;
        json_node_set_string(*ret, (const char *)buf);
    }
    return true;
}

static bool qmp_query_chardev(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    g_autoptr(GPtrArray) ids = bd_chardev_ids();
    JsonArray *list = json_array_new();

    for (guint i = 0; i < ids->len; i++) {
        BdChardev *chr = bd_chardev_find(g_ptr_array_index(ids, i));
        JsonObject *info = json_object_new();
        g_autofree char *filename = bd_chardev_filename(chr);

        json_object_set_string_member(info, "label", bd_chardev_id(chr));
        json_object_set_string_member(info, "filename", filename);
        json_object_set_boolean_member(info, "frontend-open",
                                       bd_chardev_has_frontend(chr));
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
    return true;
}

static bool qmp_query_chardev_backends(JsonObject *args, JsonNode **ret,
                                       GError **errp)
{
    /* the backends blockd implements, in qemu-storage-daemon's order */
    static const char *const names[] = {
        "pipe", "null", "ringbuf", "stdio", "socket", "file", "memory",
        "udp", "pty",
    };
    JsonArray *list = json_array_new();

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name", names[i]);
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
    return true;
}

void bd_chardev_register_qmp_commands(void)
{
    bd_qmp_register_command("query-chardev", qmp_query_chardev, 0);
    bd_qmp_register_command("query-chardev-backends",
                            qmp_query_chardev_backends, 0);
    bd_qmp_register_command("chardev-add", qmp_chardev_add, 0);
    bd_qmp_register_command("chardev-remove", qmp_chardev_remove, 0);
    bd_qmp_register_command("chardev-change", qmp_chardev_change, 0);
    bd_qmp_register_command("chardev-send-break", qmp_chardev_send_break,
                            0);
    bd_qmp_register_command("ringbuf-write", qmp_ringbuf_write, 0);
    bd_qmp_register_command("ringbuf-read", qmp_ringbuf_read, 0);
}
