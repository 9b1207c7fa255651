/*
 * External snapshots and backing file names: blockdev-snapshot,
 * blockdev-snapshot-sync and change-backing-file, as QEMU 7.2's
 * external_snapshot_prepare()/commit() and qmp_change_backing_file()
 * do them, checks in their order and with their messages.  QEMU runs
 * each snapshot command as a transaction of one action; blockd has no
 * transaction command yet, so each runs its steps directly.
 */
#include <errno.h>
#include <string.h>

#include <blockd/block-chain.h>
#include <blockd/error.h>
#include <blockd/json.h>

#include "block/block-int.h"
#include "block/block-qmp.h"
#include "qmp/qmp-dispatch.h"

/* QEMU's bdrv_lookup_bs(): by device name (none here) or node name. */
static BdNode *lookup(const char *device, const char *node_name,
                      GError **errp)
{
    BdNode *node = NULL;

    if (device) {
        node = bd_node_find(device);
    }
    if (!node && node_name) {
        node = bd_node_find(node_name);
    }
    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      device ? device : "", node_name ? node_name : "");
    }
    return node;
}

static void flush_co(void *opaque)
{
    bd_node_co_flush(opaque);
}

/* @node's options for a reopen, children named by their node. */
static JsonObject *reopen_options(BdNode *node)
{
    JsonObject *opts = json_object_new();
    GList *members = json_object_get_members(node->options);

    for (GList *l = members; l; l = l->next) {
        JsonNode *v = json_object_get_member(node->options, l->data);
        BdChild *child = NULL;

        for (guint i = 0; i < node->children->len; i++) {
            BdChild *c = node->children->pdata[i];

            if (!strcmp(c->name, l->data)) {
                child = c;
            }
        }
        if (child && JSON_NODE_HOLDS_OBJECT(v)) {
            json_object_set_string_member(opts, l->data,
                                          child->node->node_name);
        } else {
            json_object_set_member(opts, l->data, json_node_copy(v));
        }
    }
    g_list_free(members);
    /* an implicit node (a file opened with its format) has it generated */
    json_object_set_string_member(opts, "node-name", node->node_name);
    json_object_set_boolean_member(opts, "read-only", true);
    return opts;
}

/*
 * After the snapshot the old node is read-only, as QEMU reopens it, with
 * the children opened with it (its file; not its backing node).
 */
static void reopen_read_only(BdNode *node)
{
    g_autoptr(JsonObject) args = json_object_new();
    JsonArray *list = json_array_new();

    json_array_add_object_element(list, reopen_options(node));
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (!(c->role & BD_CHILD_COW) && !c->node->monitor_owned) {
            json_array_add_object_element(list, reopen_options(c->node));
        }
    }
    json_object_set_array_member(args, "options", list);
    /* as QEMU, a failure leaves the node writable and is not reported */
    bd_qmp_blockdev_reopen(args, NULL, NULL);
}

/* QEMU's checks of the overlay, then bdrv_append(). */
static bool append_overlay(BdNode *old, BdNode *overlay, GError **errp)
{
    uint64_t perm, shared;

    bd_node_get_perm(overlay, &perm, &shared);
    if (perm & BD_PERM_CONSISTENT_READ) {
        bd_error_setg(errp, "The overlay is already in use");
        return false;
    }
    if (overlay->drv->flags & BD_DRIVER_FILTER) {
        bd_error_setg(errp, "Filters cannot be used as overlays");
        return false;
    }
    if (bd_node_get_backing(overlay)) {
        bd_error_setg(errp, "The overlay already has a backing image");
        return false;
    }
    /* a format that records backing files is one that can change them */
    if (!overlay->drv->co_change_backing_file) {
        bd_error_setg(errp, "The overlay does not support backing images");
        return false;
    }
    if (!bd_node_set_backing(overlay, old, errp)) {
        return false;
    }
    if (!bd_node_replace(old, overlay, errp)) {
        bd_node_set_backing(overlay, NULL, NULL);
        return false;
    }
    return true;
}

struct BdSnapshotState {
    BdNode *old;
    BdNode *overlay;
};

/* external_snapshot_prepare() up to the overlay, then the append. */
static BdSnapshotState *snapshot_prepare(
    const char *device, const char *node_name,
    BdNode *(*open_overlay)(BdNode *old, JsonObject *args, GError **errp),
    JsonObject *args, GError **errp)
{
    BdNode *old = lookup(device, node_name, errp);
    BdSnapshotState *st;
    BdNode *overlay;
    bool ok;

    if (!old) {
        return NULL;
    }
    bd_node_drained_begin(old);
    if (!bd_block_job_check_node(old, errp) ||
        !bd_node_check_backing_blocker(old, errp)) {
        bd_node_drained_end(old);
        return NULL;
    }
    if (!old->read_only) {
        bd_run_co(flush_co, old);
    }
    overlay = open_overlay(old, args, errp);
    if (!overlay) {
        bd_node_drained_end(old);
        return NULL;
    }
    ok = append_overlay(old, overlay, errp);
    bd_node_drained_end(old);
    if (!ok) {
        bd_node_unref(overlay);
        return NULL;
    }
    st = g_new0(BdSnapshotState, 1);
    st->old = old;
    st->overlay = overlay;
    return st;
}

void bd_snapshot_commit(BdSnapshotState *st)
{
    reopen_read_only(st->old);
    /* the overlay's users hold it now */
    bd_node_unref(st->overlay);
    g_free(st);
}

void bd_snapshot_abort(BdSnapshotState *st)
{
    /* QEMU's external_snapshot_abort(): the old node back in its place */
    bd_node_replace(st->overlay, st->old, NULL);
    bd_node_set_backing(st->overlay, NULL, NULL);
    bd_node_unref(st->overlay);
    g_free(st);
}

static bool snapshot(const char *device, const char *node_name,
                     BdNode *(*open_overlay)(BdNode *old, JsonObject *args,
                                             GError **errp),
                     JsonObject *args, GError **errp)
{
    BdSnapshotState *st = snapshot_prepare(device, node_name, open_overlay,
                                           args, errp);

    if (st) {
        bd_snapshot_commit(st);
    }
    return st != NULL;
}

static BdNode *overlay_by_name(BdNode *old, JsonObject *args, GError **errp)
{
    const char *name = json_object_get_string_member(args, "overlay");
    BdNode *node = lookup(name, name, errp);

    if (node) {
        bd_node_ref(node);
    }
    return node;
}

static bool qmp_blockdev_snapshot(JsonObject *args, JsonNode **ret,
                                  GError **errp)
{
    const char *node = json_object_get_string_member(args, "node");

    return snapshot(node, node, overlay_by_name, args, errp);
}

typedef struct Create {
    const BdBlockDriver *drv;
    JsonObject *options;
    GError **errp;
    int ret;
} Create;

static void create_co(void *opaque)
{
    Create *c = opaque;

    c->ret = c->drv->co_create(c->options, c->errp);
}

static bool run_create(const char *driver, JsonObject *options,
                       GError **errp)
{
    Create c = { bd_block_driver_find(driver, NULL), options, errp, 0 };

    if (!c.drv) {
        bd_error_setg(errp, "Unknown driver '%s'", driver);
        return false;
    }
    if (!c.drv->co_create) {
        bd_error_setg(errp, "Driver '%s' does not support image creation",
                      driver);
        return false;
    }
    bd_run_co(create_co, &c);
    return c.ret >= 0;
}

/*
 * Mode absolute-paths: QEMU's bdrv_img_create() of the overlay, the
 * snapshotted node's file name (absolute) and format as its backing
 * file, its size: the file first, then the format in it.
 */
static bool create_overlay(BdNode *old, const char *format,
                           const char *filename, GError **errp)
{
    g_autoptr(JsonObject) fopts = json_object_new();
    g_autoptr(JsonObject) opts = json_object_new();
    g_autofree char *backing = bd_node_filename(old);
    JsonObject *file;
    int64_t size = old->total_bytes;

    if (!bd_block_driver_find(format, NULL)) {
        bd_error_setg(errp, "Unknown file format '%s'", format);
        return false;
    }
    json_object_set_string_member(fopts, "driver", "file");
    json_object_set_string_member(fopts, "filename", filename);
    json_object_set_int_member(fopts, "size", 0);
    if (!run_create("file", fopts, errp)) {
        return false;
    }
    json_object_set_string_member(opts, "driver", format);
    file = json_object_new();
    json_object_set_string_member(file, "driver", "file");
    json_object_set_string_member(file, "filename", filename);
    json_object_set_object_member(opts, "file", file);
    json_object_set_int_member(opts, "size", size);
    json_object_set_string_member(opts, "backing-file", backing);
    json_object_set_string_member(opts, "backing-fmt", old->drv->name);
    return run_create(format, opts, errp);
}

static BdNode *overlay_from_file(BdNode *old, JsonObject *args,
                                 GError **errp)
{
    const char *node_name = bd_json_get_str(args, "node-name", NULL);
    const char *snap_name = bd_json_get_str(args, "snapshot-node-name",
                                            NULL);
    const char *format = bd_json_get_str(args, "format", "qcow2");
    const char *mode = bd_json_get_str(args, "mode", "absolute-paths");
    g_autoptr(JsonObject) opts = NULL;
    JsonObject *file;

    if (node_name && !snap_name) {
        bd_error_setg(errp, "New overlay node-name missing");
        return NULL;
    }
    if (snap_name && bd_node_find(snap_name)) {
        bd_error_setg(errp, "New overlay node-name already in use");
        return NULL;
    }
    if (strcmp(mode, "existing") != 0 &&
        !create_overlay(old, format,
                        json_object_get_string_member(args, "snapshot-file"),
                        errp)) {
        return NULL;
    }
    if (!bd_block_driver_find(format, NULL)) {
        bd_error_setg(errp, "Unknown driver '%s'", format);
        return NULL;
    }
    opts = json_object_new();
    json_object_set_string_member(opts, "driver", format);
    if (snap_name) {
        json_object_set_string_member(opts, "node-name", snap_name);
    }
    file = json_object_new();
    json_object_set_string_member(file, "driver", "file");
    json_object_set_string_member(
        file, "filename", json_object_get_string_member(args,
                                                        "snapshot-file"));
    json_object_set_object_member(opts, "file", file);
    /* the backing node is the snapshotted one, set by the append */
    json_object_set_null_member(opts, "backing");
    if (old->read_only) {
        json_object_set_boolean_member(opts, "read-only", true);
    }
    return bd_node_open(opts, false, errp);
}

static bool qmp_blockdev_snapshot_sync(JsonObject *args, JsonNode **ret,
                                       GError **errp)
{
    return snapshot(bd_json_get_str(args, "device", NULL),
                    bd_json_get_str(args, "node-name", NULL),
                    overlay_from_file, args, errp);
}

/* QEMU's qmp_get_root_bs() */
static BdNode *root_node(const char *name, GError **errp)
{
    BdNode *node = lookup(name, name, errp);

    if (node && !bd_node_is_root(node)) {
        bd_error_setg(errp, "Need a root block node");
        return NULL;
    }
    return node;
}

static bool in_chain(BdNode *top, BdNode *node)
{
    for (BdNode *n = top; n;) {
        BdChild *c = bd_node_get_backing(n);

        if (n == node) {
            return true;
        }
        n = c ? c->node : NULL;
    }
    return false;
}

static bool qmp_change_backing_file(JsonObject *args, JsonNode **ret,
                                    GError **errp)
{
    const char *device = json_object_get_string_member(args, "device");
    const char *image = json_object_get_string_member(args,
                                                      "image-node-name");
    const char *backing = json_object_get_string_member(args,
                                                        "backing-file");
    BdNode *bs = root_node(device, errp);
    BdNode *image_bs;

    if (!bs) {
        return false;
    }
    image_bs = lookup(NULL, image, errp);
    if (!image_bs) {
        return false;
    }
    if (!bd_node_get_backing(image_bs)) {
        bd_error_setg(errp, "not allowing backing file change on an image "
                      "without a backing file");
        return false;
    }
    if (!bd_block_job_check_node(bs, errp)) {
        return false;
    }
    if (!in_chain(bs, image_bs)) {
        bd_error_setg(errp, "'%s' and image file are not in the same chain",
                      device);
        return false;
    }
    if (image_bs->read_only) {
        /* QEMU reopens it read-write for the change; blockd cannot yet */
        bd_error_setg(errp, "Node '%s' is read-only: change-backing-file "
                      "needs it writable", image);
        return false;
    }
    /* QEMU records the image's own format as the backing format */
    if (!bd_node_change_backing_file(image_bs, backing,
                                     image_bs->drv->name, NULL)) {
        bd_error_setg(errp, "Could not change backing file to '%s'",
                      backing);
        return false;
    }
    return true;
}

BdSnapshotState *bd_snapshot_prepare(const char *type, JsonObject *data,
                                     GError **errp)
{
    if (!strcmp(type, "blockdev-snapshot")) {
        const char *node = json_object_get_string_member(data, "node");

        return snapshot_prepare(node, node, overlay_by_name, data, errp);
    }
    return snapshot_prepare(bd_json_get_str(data, "device", NULL),
                            bd_json_get_str(data, "node-name", NULL),
                            overlay_from_file, data, errp);
}

void bd_snapshot_external_qmp_init(void)
{
    bd_qmp_register_command("blockdev-snapshot", qmp_blockdev_snapshot, 0);
    bd_qmp_register_command("blockdev-snapshot-sync",
                            qmp_blockdev_snapshot_sync, 0);
    bd_qmp_register_command("change-backing-file", qmp_change_backing_file,
                            0);
}
