/*
 * The block-dirty-bitmap-* QMP commands and
 * x-debug-block-dirty-bitmap-sha256, with QEMU 7.2's checks in QEMU's
 * order (the first failing check names the error).
 */
#include <errno.h>
#include <string.h>

#include <blockd/error.h>

#include "block/dirty-bitmap.h"
#include "qmp/qmp-dispatch.h"

static const char *str_arg(JsonObject *args, const char *name)
{
    return json_object_get_string_member(args, name);
}

static bool qmp_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *node_name = str_arg(args, "node");
    const char *name = str_arg(args, "name");
    BdDirtyBitmap *bm;
    uint32_t granularity;
    bool persistent;
    BdNode *node;

    if (!name[0]) {
        bd_error_setg(errp, "Bitmap name cannot be empty");
        return false;
    }
    node = bd_node_find(node_name);
    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      node_name, node_name);
        return false;
    }
    if (json_object_has_member(args, "granularity")) {
        int64_t g = json_object_get_int_member(args, "granularity");

        if (g < 512 || g > UINT32_MAX || (g & (g - 1))) {
            bd_error_setg(errp, "Granularity must be power of 2 and at "
                          "least 512");
            return false;
        }
        granularity = (uint32_t)g;
    } else {
        granularity = bd_node_default_bitmap_granularity(node);
    }
    persistent = json_object_get_boolean_member_with_default(args,
                                                             "persistent",
                                                             false);
    if (persistent) {
        /* QEMU's bdrv_can_store_new_dirty_bitmap() */
        if (!node->drv->can_store_new_dirty_bitmap) {
            bd_error_setg(errp, "Can't store persistent bitmaps to %s: %s",
                          node->node_name, g_strerror(ENOTSUP));
            return false;
        }
        if (!node->drv->can_store_new_dirty_bitmap(node, name, granularity,
                                                   errp)) {
            return false;
        }
    }
    bm = bd_dirty_bitmap_create(node, granularity, name, errp);
    if (!bm) {
        return false;
    }
    if (json_object_get_boolean_member_with_default(args, "disabled",
                                                    false)) {
        bd_dirty_bitmap_set_enabled(bm, false);
    }
    bd_dirty_bitmap_set_persistent(bm, persistent);
    return true;
}

static BdDirtyBitmap *lookup_args(JsonObject *args, GError **errp)
{
    return bd_dirty_bitmap_lookup(str_arg(args, "node"), str_arg(args, "name"),
                                  NULL, errp);
}

static bool qmp_remove(JsonObject *args, JsonNode **ret, GError **errp)
{
    BdNode *node;
    BdDirtyBitmap *bm = bd_dirty_bitmap_lookup(str_arg(args, "node"),
                                               str_arg(args, "name"), &node,
                                               errp);

    if (!bm || !bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_BUSY |
                                      BD_DIRTY_BITMAP_CHECK_RO, errp)) {
        return false;
    }
    /* a persistent bitmap leaves the image first, as in QEMU */
    if (bd_dirty_bitmap_persistent(bm) &&
        node->drv->remove_persistent_dirty_bitmap &&
        !node->drv->remove_persistent_dirty_bitmap(
            node, bd_dirty_bitmap_name(bm), errp)) {
        return false;
    }
    bd_dirty_bitmap_release(bm);
    return true;
}

static bool qmp_clear(JsonObject *args, JsonNode **ret, GError **errp)
{
    BdDirtyBitmap *bm = lookup_args(args, errp);

    if (!bm ||
        !bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_DEFAULT, errp)) {
        return false;
    }
    bd_dirty_bitmap_clear(bm);
    return true;
}

static bool set_enabled(JsonObject *args, bool enabled, GError **errp)
{
    BdDirtyBitmap *bm = lookup_args(args, errp);

    if (!bm ||
        !bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_ALLOW_RO, errp)) {
        return false;
    }
    bd_dirty_bitmap_set_enabled(bm, enabled);
    return true;
}

static bool qmp_enable(JsonObject *args, JsonNode **ret, GError **errp)
{
    return set_enabled(args, true, errp);
}

static bool qmp_disable(JsonObject *args, JsonNode **ret, GError **errp)
{
    return set_enabled(args, false, errp);
}

/*
 * As in QEMU 7.2 outside a transaction, the sources are merged one by
 * one: a failing source leaves the earlier ones merged.  (QEMU crashes
 * on an empty list; here it merges nothing.)
 */
static bool qmp_merge(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonArray *list = json_object_get_array_member(args, "bitmaps");
    BdDirtyBitmap *dst;
    BdNode *node;

    dst = bd_dirty_bitmap_lookup(str_arg(args, "node"),
                                 str_arg(args, "target"), &node, errp);
    if (!dst) {
        return false;
    }
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonNode *el = json_array_get_element(list, i);
        BdDirtyBitmap *src;

        if (JSON_NODE_HOLDS_VALUE(el)) {
            const char *name = json_node_get_string(el);

            src = bd_dirty_bitmap_find(node, name);
            if (!src) {
                bd_error_setg(errp, "Dirty bitmap '%s' not found", name);
                return false;
            }
        } else {
            JsonObject *o = json_node_get_object(el);

            src = bd_dirty_bitmap_lookup(str_arg(o, "node"),
                                         str_arg(o, "name"), NULL, errp);
            if (!src) {
                return false;
            }
        }
        if (!bd_dirty_bitmap_merge(dst, src, errp)) {
            return false;
        }
    }
    return true;
}

static bool qmp_sha256(JsonObject *args, JsonNode **ret, GError **errp)
{
    BdDirtyBitmap *bm = lookup_args(args, errp);
    g_autofree char *hex = NULL;
    JsonObject *o;

    if (!bm) {
        return false;
    }
    hex = bd_dirty_bitmap_sha256(bm);
    o = json_object_new();
    json_object_set_string_member(o, "sha256", hex);
    *ret = json_node_init_object(json_node_alloc(), o);
    json_object_unref(o);
    return true;
}

void bd_dirty_bitmap_qmp_init(void)
{
    bd_qmp_register_command("block-dirty-bitmap-add", qmp_add, 0);
    bd_qmp_register_command("block-dirty-bitmap-remove", qmp_remove, 0);
    bd_qmp_register_command("block-dirty-bitmap-clear", qmp_clear, 0);
    bd_qmp_register_command("block-dirty-bitmap-enable", qmp_enable, 0);
    bd_qmp_register_command("block-dirty-bitmap-disable", qmp_disable, 0);
    bd_qmp_register_command("block-dirty-bitmap-merge", qmp_merge, 0);
    bd_qmp_register_command("x-debug-block-dirty-bitmap-sha256", qmp_sha256,
                            0);
}
