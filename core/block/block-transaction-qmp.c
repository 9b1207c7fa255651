/*
 * transaction: QEMU 7.2's qmp_transaction() for the actions blockd has
 * (abort, the dirty bitmap actions, blockdev-snapshot,
 * blockdev-snapshot-sync and blockdev-snapshot-internal-sync): every
 * action is prepared in order; when one fails, those before it are undone
 * newest first and the graph, the bitmaps and the images' snapshot tables
 * are as they were; otherwise all are committed.  The backup actions are
 * in the schema, as qsd's, but fail the transaction with a message (no
 * backup job yet).  completion-mode 'grouped' is for job actions, which
 * none of these is: each refuses it, as in QEMU.
 */
#include <string.h>

#include <blockd/error.h>
#include <blockd/json.h>

#include "block/block-int.h"
#include "block/block-qmp.h"
#include "block/dirty-bitmap.h"
#include "qmp/qmp-dispatch.h"

typedef struct Action {
    const char *type;
    JsonObject *data;
    BdSnapshotState *snap;
    BdDirtyBitmap *bitmap;      /* the bitmap changed */
    BdDirtyBitmap *backup;      /* its content before (clear, merge) */
    bool was_enabled;           /* its state before (enable, disable) */
    bool prepared;
} Action;

static bool run(const char *command, JsonObject *data, GError **errp)
{
    BdQmpHandler h = bd_qmp_find_core_handler(command);
    JsonNode *ret = NULL;
    bool ok;

    g_assert(h);
    ok = h(data, &ret, errp);
    if (ret) {
        json_node_unref(ret);
    }
    return ok;
}

static BdDirtyBitmap *lookup(JsonObject *data, const char *name_key,
                             GError **errp)
{
    return bd_dirty_bitmap_lookup(bd_json_get_str(data, "node", ""),
                                  bd_json_get_str(data, name_key, ""),
                                  NULL, errp);
}

/* A copy of @bm's bits, to restore them on abort. */
static BdDirtyBitmap *backup_of(BdDirtyBitmap *bm)
{
    BdDirtyBitmap *b = bd_dirty_bitmap_new(bd_dirty_bitmap_size(bm),
                                           bd_dirty_bitmap_granularity(bm),
                                           NULL);

    bd_dirty_bitmap_merge(b, bm, NULL);
    return b;
}

static bool prepare(Action *a, bool grouped, GError **errp)
{
    const char *t = a->type;

    if (!strcmp(t, "abort")) {
        bd_error_setg(errp, "Transaction aborted using Abort action");
        return false;
    }
    if (!strcmp(t, "blockdev-backup") || !strcmp(t, "drive-backup")) {
        /* refused, not half done: these need what blockd lacks */
        bd_error_setg(errp, "Transaction action '%s' is not supported by "
                      "blockd yet (no backup job)", t);
        return false;
    }
    if (grouped) {
        bd_error_setg(errp, "Action '%s' does not support Transaction "
                      "property completion-mode = grouped", t);
        return false;
    }
    if (!strcmp(t, "blockdev-snapshot") ||
        !strcmp(t, "blockdev-snapshot-sync")) {
        a->snap = bd_snapshot_prepare(t, a->data, errp);
        return a->snap != NULL;
    }
    if (!strcmp(t, "blockdev-snapshot-internal-sync")) {
        /* taken now (its checks are the command's); deleted on abort */
        return run(t, a->data, errp);
    }
    if (!strcmp(t, "block-dirty-bitmap-add")) {
        if (!run(t, a->data, errp)) {
            return false;
        }
        a->bitmap = lookup(a->data, "name", NULL);
        return true;
    }
    if (!strcmp(t, "block-dirty-bitmap-remove")) {
        /* checked now, removed at commit (QEMU hides it meanwhile) */
        a->bitmap = lookup(a->data, "name", errp);
        return a->bitmap &&
               bd_dirty_bitmap_check(a->bitmap, BD_DIRTY_BITMAP_CHECK_BUSY,
                                     errp);
    }
    if (!strcmp(t, "block-dirty-bitmap-enable") ||
        !strcmp(t, "block-dirty-bitmap-disable")) {
        a->bitmap = lookup(a->data, "name", errp);
        if (!a->bitmap) {
            return false;
        }
        a->was_enabled = bd_dirty_bitmap_enabled(a->bitmap);
        return run(t, a->data, errp);
    }
    /* clear and merge: the bits before, for an abort */
    a->bitmap = lookup(a->data, !strcmp(t, "block-dirty-bitmap-merge") ?
                       "target" : "name", errp);
    if (!a->bitmap) {
        return false;
    }
    a->backup = backup_of(a->bitmap);
    return run(t, a->data, errp);
}

static void commit(Action *a)
{
    if (a->snap) {
        bd_snapshot_commit(a->snap);
        a->snap = NULL;
    } else if (!strcmp(a->type, "block-dirty-bitmap-remove")) {
        run(a->type, a->data, NULL);
    }
}

static void undo(Action *a)
{
    const char *t = a->type;

    if (a->snap) {
        bd_snapshot_abort(a->snap);
        a->snap = NULL;
    } else if (!strcmp(t, "blockdev-snapshot-internal-sync")) {
        /* the snapshot this transaction took, by its unique name */
        run("blockdev-snapshot-delete-internal-sync", a->data, NULL);
    } else if (!strcmp(t, "block-dirty-bitmap-add") && a->bitmap) {
        bd_dirty_bitmap_release(a->bitmap);
    } else if (!strcmp(t, "block-dirty-bitmap-enable") ||
               !strcmp(t, "block-dirty-bitmap-disable")) {
        bd_dirty_bitmap_set_enabled(a->bitmap, a->was_enabled);
    } else if (a->backup) {
        bd_dirty_bitmap_clear(a->bitmap);
        bd_dirty_bitmap_merge(a->bitmap, a->backup, NULL);
    }
}

static bool qmp_transaction(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonArray *list = json_object_get_array_member(args, "actions");
    JsonObject *props = bd_json_get_object(args, "properties");
    bool grouped = props && !strcmp(bd_json_get_str(props, "completion-mode",
                                                    "individual"),
                                    "grouped");
    guint n = json_array_get_length(list);
    g_autofree Action *actions = g_new0(Action, n);
    bool ok = true;
    guint i;

    for (i = 0; i < n; i++) {
        JsonObject *o = json_array_get_object_element(list, i);

        actions[i].type = json_object_get_string_member(o, "type");
        actions[i].data = json_object_get_object_member(o, "data");
    }
    for (i = 0; ok && i < n; i++) {
        ok = prepare(&actions[i], grouped, errp);
        actions[i].prepared = ok;
    }
    if (ok) {
        for (i = 0; i < n; i++) {
            commit(&actions[i]);
        }
    } else {
        /* newest first; a merge that failed half way is undone too */
        for (guint j = i; j-- > 0;) {
            if (actions[j].prepared || actions[j].backup) {
                undo(&actions[j]);
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (actions[i].backup) {
            bd_dirty_bitmap_unref(actions[i].backup);
        }
    }
    return ok;
}

void bd_block_transaction_qmp_init(void)
{
    bd_qmp_register_command("transaction", qmp_transaction, 0);
}
