/*
 * blockdev-snapshot-internal-sync and
 * blockdev-snapshot-delete-internal-sync: QEMU 7.2's checks in its order
 * (the device is a root node, writable, of a format with internal
 * snapshots; the name is given and new / the snapshot exists), then the
 * node's driver does the work with the node drained.
 */
#include <errno.h>
#include <string.h>

#include <blockd/error.h>

#include "block/block-int.h"
#include "block/block-qmp.h"
#include "qmp/qmp-dispatch.h"

/* QEMU's qmp_get_root_bs(): a node no other node has as a child. */
static BdNode *root_node(const char *device, GError **errp)
{
    BdNode *node = bd_node_find(device);

    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      device, device);
        return NULL;
    }
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->parent) {
            bd_error_setg(errp, "Need a root block node");
            return NULL;
        }
    }
    return node;
}

/*
 * The first snapshot matching @id and @name (either may be NULL), a new
 * reference, or NULL; false with QEMU's error if there is no list.
 */
static bool find_snapshot(BdNode *node, const char *id, const char *name,
                          JsonObject **found, GError **errp)
{
    g_autoptr(JsonArray) list = NULL;
    int ret = node->drv->snapshot_list ?
              node->drv->snapshot_list(node, &list) : -ENOTSUP;

    *found = NULL;
    if (ret < 0) {
        bd_error_setg(errp, "Failed to get a snapshot list: %s",
                      g_strerror(-ret));
        return false;
    }
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *sn = json_array_get_object_element(list, i);

        if ((!id || !strcmp(id, json_object_get_string_member(sn, "id"))) &&
            (!name ||
             !strcmp(name, json_object_get_string_member(sn, "name")))) {
            *found = json_object_ref(sn);
            break;
        }
    }
    return true;
}

static bool qmp_snapshot_create(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    const char *device = json_object_get_string_member(args, "device");
    const char *name = json_object_get_string_member(args, "name");
    g_autoptr(JsonObject) old = NULL;
    BdNode *node = root_node(device, errp);
    int64_t now, clock;
    int r;

    if (!node) {
        return false;
    }
    if (bd_node_is_read_only(node)) {
        bd_error_setg(errp, "Device '%s' is read only", device);
        return false;
    }
    if (!node->drv->snapshot_create) {
        bd_error_setg(errp, "Block format '%s' used by device '%s' does not "
                      "support internal snapshots", node->drv->name, device);
        return false;
    }
    if (!name[0]) {
        bd_error_setg(errp, "Name is empty");
        return false;
    }
    if (!find_snapshot(node, NULL, name, &old, errp)) {
        return false;
    }
    if (old) {
        bd_error_setg(errp, "Snapshot with name '%s' already exists on "
                      "device '%s'", name, device);
        return false;
    }
    /* a daemon has no guest: its "VM clock" is the host's, as in qsd */
    now = g_get_real_time();
    clock = g_get_real_time() * 1000;
    bd_node_drained_begin(node);
    r = node->drv->snapshot_create(node, name, now / G_USEC_PER_SEC,
                                   now % G_USEC_PER_SEC * 1000, clock, errp);
    bd_node_drained_end(node);
    if (r < 0) {
        g_prefix_error(errp, "Failed to create snapshot '%s' on device "
                       "'%s': ", name, device);
        return false;
    }
    return true;
}

static bool qmp_snapshot_delete(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    const char *device = json_object_get_string_member(args, "device");
    const char *id = json_object_get_string_member_with_default(args, "id",
                                                                NULL);
    const char *name = json_object_get_string_member_with_default(args,
                                                                  "name",
                                                                  NULL);
    g_autoptr(JsonObject) sn = NULL;
    BdNode *node = root_node(device, errp);
    int r;

    if (!node) {
        return false;
    }
    if (!id && !name) {
        bd_error_setg(errp, "Name or id must be provided");
        return false;
    }
    if (!find_snapshot(node, id, name, &sn, errp)) {
        return false;
    }
    if (!sn) {
        /* QEMU prints an absent one as null */
        bd_error_setg(errp, "Snapshot with id '%s' and name '%s' does not "
                      "exist on device '%s'", id ? id : "null",
                      name ? name : "null", device);
        return false;
    }
    if (!node->drv->snapshot_delete) {
        bd_error_setg(errp, "Block format '%s' used by device '%s' does not "
                      "support internal snapshot deletion", node->drv->name,
                      device);
        return false;
    }
    bd_node_drained_begin(node);
    r = node->drv->snapshot_delete(node, id, name, errp);
    bd_node_drained_end(node);
    if (r < 0) {
        return false;
    }
    *ret = json_node_init_object(json_node_alloc(), sn);
    return true;
}

void bd_snapshot_internal_qmp_init(void)
{
    bd_qmp_register_command("blockdev-snapshot-internal-sync",
                            qmp_snapshot_create, 0);
    bd_qmp_register_command("blockdev-snapshot-delete-internal-sync",
                            qmp_snapshot_delete, 0);
}
