/*
 * Block exports: the table of exports, their life cycle (see
 * <blockd/export.h>) and the QMP commands block-export-add,
 * block-export-del and query-block-exports.
 *
 * The checks of block-export-add come in the order qemu-storage-daemon
 * 7.2 makes them, so that the first error reported is the same.
 */
#include <string.h>

#include <blockd/error.h>
#include <blockd/iothread.h>

#include "aio/main-loop.h"
#include "block/block.h"
#include "export/export.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-event.h"
#include "schema/schema.h"
#include "util/id.h"
#include "util/main-thread.h"

struct BdExport {
    const BdExportType *type;
    char *id;
    char *node_name;
    BdBlockBackend *blk;
    BdAioContext *ctx;
    bool writable;
    bool writethrough;
    bool user_owned;        /* the user's reference is still held */
    bool shutting_down;     /* request_shutdown() was (being) called */
    int refcount;
    /* the contexts of a multi-threaded export's iothreads, else NULL */
    BdAioContext **multithread;
    size_t multithread_count;
    void *instance;         /* instance_size bytes, freed by the core */
    void *opaque;
};

/* Every export still in the table, newest first (QEMU lists them so). */
static GList *exports;
/* Exports whose last reference is gone, waiting to be deleted. */
static GList *pending_delete;
static bool delete_bh_scheduled;

/* ---- accessors ---- */

size_t bd_export_get_multithread_contexts(BdExport *exp,
                                          BdAioContext *const **ctxs)
{
    *ctxs = exp->multithread;
    return exp->multithread_count;
}

const char *bd_export_get_id(BdExport *exp)
{
    return exp->id;
}

const char *bd_export_get_type_name(BdExport *exp)
{
    return exp->type->name;
}

const char *bd_export_get_node_name(BdExport *exp)
{
    return exp->node_name;
}

BdBlockBackend *bd_export_get_blk(BdExport *exp)
{
    return exp->blk;
}

bool bd_export_is_writable(BdExport *exp)
{
    return exp->writable;
}

bool bd_export_is_writethrough(BdExport *exp)
{
    return exp->writethrough;
}

BdAioContext *bd_export_get_aio_context(BdExport *exp)
{
    return exp->ctx;
}

void *bd_export_get_opaque(BdExport *exp)
{
    return exp->opaque;
}

void bd_export_set_opaque(BdExport *exp, void *opaque)
{
    exp->opaque = opaque;
}

bool bd_export_is_shutting_down(BdExport *exp)
{
    return exp->shutting_down;
}

BdExport *bd_export_find(const char *id)
{
    BD_ASSERT_MAIN_LOOP();
    for (GList *l = exports; l; l = l->next) {
        BdExport *exp = l->data;

        if (strcmp(exp->id, id) == 0) {
            return exp;
        }
    }
    return NULL;
}

/* ---- deletion ---- */

static void export_free(BdExport *exp)
{
    bd_blk_unref(exp->blk);
    for (size_t i = 0; i < exp->multithread_count; i++) {
        bd_aio_context_remove_user(exp->multithread[i]);
    }
    g_free(exp->multithread);
    g_free(exp->instance);
    g_free(exp->node_name);
    g_free(exp->id);
    g_free(exp);
}

/*
 * Delete every export whose last reference is gone: the type frees its
 * state, the backend goes, and only then is the id free again, which
 * BLOCK_EXPORT_DELETED announces.
 */
static void delete_pending(void)
{
    while (pending_delete) {
        BdExport *exp = pending_delete->data;
        JsonObject *data;

        pending_delete = g_list_delete_link(pending_delete, pending_delete);
        exports = g_list_remove(exports, exp);
        if (exp->type->destroy) {
            exp->type->destroy(exp);
        }
        data = json_object_new();
        json_object_set_string_member(data, "id", exp->id);
        export_free(exp);
        bd_qmp_event_emit("BLOCK_EXPORT_DELETED", data);
        json_object_unref(data);
    }
}

static void delete_bh(void *opaque)
{
    delete_bh_scheduled = false;
    delete_pending();
}

void bd_export_ref(BdExport *exp)
{
    BD_ASSERT_MAIN_LOOP();
    g_assert(exp->refcount > 0);
    exp->refcount++;
}

void bd_export_unref(BdExport *exp)
{
    BD_ASSERT_MAIN_LOOP();
    g_assert(exp->refcount > 0);
    if (--exp->refcount > 0) {
        return;
    }
    /* the user's reference is the last one unless a shutdown began */
    g_assert(!exp->user_owned);
    pending_delete = g_list_append(pending_delete, exp);
    if (!delete_bh_scheduled) {
        delete_bh_scheduled = true;
        bd_aio_bh_schedule_oneshot(bd_aio_main_context(), delete_bh, NULL);
    }
}

static void request_shutdown(BdExport *exp)
{
    if (!exp->user_owned) {
        return;
    }
    exp->shutting_down = true;
    if (exp->type->request_shutdown) {
        exp->type->request_shutdown(exp);
    }
    exp->user_owned = false;
    bd_export_unref(exp);
}

bool bd_export_del(const char *id, bool hard, GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    BdExport *exp = bd_export_find(id);

    if (!exp) {
        bd_error_setg(errp, "Export '%s' is not found", id);
        return false;
    }
    if (!exp->user_owned) {
        bd_error_setg(errp, "Export '%s' is already shutting down", id);
        return false;
    }
    if (!hard && exp->refcount > 1) {
        bd_error_setg(errp, "export '%s' still in use", id);
        return false;
    }
    request_shutdown(exp);
    /*
     * QEMU runs the deletion bottom half before the command's reply goes
     * out: when nothing else holds the export, BLOCK_EXPORT_DELETED comes
     * first.  Do the same by deleting at once.
     */
    delete_pending();
    return true;
}

void bd_export_close_all(const char *type_name)
{
    BD_ASSERT_MAIN_LOOP();
    bool again;

    for (GList *l = exports; l; l = l->next) {
        BdExport *exp = l->data;

        if (!type_name || strcmp(exp->type->name, type_name) == 0) {
            /* the list only shrinks in delete_pending(), not here */
            request_shutdown(exp);
        }
    }
    delete_pending();
    do {
        again = false;
        for (GList *l = exports; l; l = l->next) {
            BdExport *exp = l->data;

            if (!type_name || strcmp(exp->type->name, type_name) == 0) {
                again = true;
                break;
            }
        }
        if (again) {
            /* clients finish disconnecting in the main context */
            g_main_context_iteration(NULL, TRUE);
        }
    } while (again);
}

/* ---- creation ---- */

static bool export_type_usable(const BdExportType *type)
{
    return type->struct_size >= offsetof(BdExportType, destroy) +
                                sizeof(type->destroy) &&
           type->create;
}

static BdExport *export_add(JsonObject *opts, GError **errp)
{
    const char *id = json_object_get_string_member(opts, "id");
    const char *type_name = json_object_get_string_member(opts, "type");
    const char *node_name = json_object_get_string_member(opts,
                                                          "node-name");
    bool writable = json_object_get_boolean_member_with_default(
        opts, "writable", false);
    bool writethrough = json_object_get_boolean_member_with_default(
        opts, "writethrough", false);
    bool fixed_iothread = json_object_get_boolean_member_with_default(
        opts, "fixed-iothread", false);
    JsonNode *iothread_node = json_object_get_member(opts, "iothread");
    /* BlockExportIothreads: one id moves the node, a list spreads I/O */
    const char *iothread = iothread_node &&
        JSON_NODE_HOLDS_VALUE(iothread_node) ?
        json_node_get_string(iothread_node) : NULL;
    JsonArray *iothread_list = iothread_node &&
        JSON_NODE_HOLDS_ARRAY(iothread_node) ?
        json_node_get_array(iothread_node) : NULL;
    g_autofree BdAioContext **multithread = NULL;
    size_t multithread_count = 0;
    const BdExportType *type;
    GError *lookup_err = NULL;
    BdBlockBackend *blk;
    BdNode *node;
    BdExport *exp;
    uint64_t perm;

    if (fixed_iothread && iothread_list) {
        bd_error_setg(errp,
                      "Cannot use fixed-iothread for a multi-threaded export");
        return NULL;
    }
    if (!bd_id_wellformed(id)) {
        bd_error_setg(errp, "Invalid block export id");
        return NULL;
    }
    if (bd_export_find(id)) {
        bd_error_setg(errp, "Block export id '%s' is already in use", id);
        return NULL;
    }
    type = bd_plugins_lookup(BD_PROVIDE_EXPORT_TYPE, type_name, &lookup_err);
    if (!type) {
        g_propagate_error(errp, lookup_err);
        return NULL;
    }
    if (!export_type_usable(type)) {
        bd_error_setg(errp, "No driver found for the requested export type");
        return NULL;
    }
    node = bd_node_find(node_name);
    if (!node) {
        bd_error_setg(errp,
                      "Cannot find device='' nor node-name='%s'", node_name);
        return NULL;
    }
    /* before the iothread, as in QEMU */
    if (writable && bd_node_is_read_only(node)) {
        bd_error_setg(errp, "Cannot export read-only node as writable");
        return NULL;
    }
    BdIOThread *iot = NULL;
    if (iothread) {
        iot = bd_iothread_find(iothread);
        if (!iot) {
            bd_error_setg(errp, "iothread \"%s\" not found", iothread);
            return NULL;
        }
    } else if (iothread_list) {
        multithread_count = json_array_get_length(iothread_list);
        if (!multithread_count) {
            bd_error_setg(errp, "The set of I/O threads must not be empty");
            return NULL;
        }
        multithread = g_new(BdAioContext *, multithread_count);
        for (size_t i = 0; i < multithread_count; i++) {
            const char *name = json_array_get_string_element(iothread_list,
                                                             i);
            BdIOThread *t = bd_iothread_find(name);

            if (!t) {
                bd_error_setg(errp, "iothread \"%s\" not found", name);
                return NULL;
            }
            multithread[i] = bd_iothread_get_aio_context(t);
        }
        if (!type->supports_multithread) {
            bd_error_setg(errp,
                          "Export type '%s' does not support multi-threading",
                          type->name);
            return NULL;
        }
    }

    /* QEMU's export permissions: read (and write), sharing everything */
    perm = BD_PERM_CONSISTENT_READ | (writable ? BD_PERM_WRITE : 0);
    blk = bd_blk_new(NULL, perm, BD_PERM_ALL);
    if (!bd_blk_insert(blk, node, errp)) {
        bd_blk_unref(blk);
        return NULL;
    }
    bd_blk_set_write_through(blk, writethrough);

    /*
     * Into the iothread with the node (and its subtree), as QEMU does: a
     * node that cannot move (another user holds it) keeps its context,
     * unless fixed-iothread demands the move.
     */
    if (iot) {
        g_autoptr(GError) move_err = NULL;

        if (!bd_node_set_aio_context(node, bd_iothread_get_aio_context(iot),
                                     blk, &move_err) && fixed_iothread) {
            g_propagate_error(errp, g_steal_pointer(&move_err));
            bd_blk_unref(blk);
            return NULL;
        }
    }

    exp = g_new0(BdExport, 1);
    exp->type = type;
    exp->id = g_strdup(id);
    exp->node_name = g_strdup(node_name);
    exp->blk = blk;
    exp->ctx = bd_node_get_aio_context(node);
    exp->writable = writable;
    exp->writethrough = writethrough;
    exp->user_owned = true;
    exp->refcount = 1;
    exp->multithread = g_steal_pointer(&multithread);
    exp->multithread_count = multithread_count;
    /* connections run in these threads: the iothreads must stay */
    for (size_t i = 0; i < multithread_count; i++) {
        bd_aio_context_add_user(exp->multithread[i]);
    }
    if (type->instance_size) {
        exp->instance = g_malloc0(type->instance_size);
    }
    exp->opaque = exp->instance;

    if (!type->create(exp, opts, errp)) {
        /* the type holds nothing after a failed create() */
        export_free(exp);
        return NULL;
    }
    exports = g_list_prepend(exports, exp);
    return exp;
}

BdExport *bd_export_add(JsonObject *options, GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    g_autoptr(JsonNode) in = json_node_init_object(json_node_alloc(),
                                                   options);
    g_autoptr(JsonNode) checked =
        bd_schema_check_type("BlockExportOptions", in, false, errp);

    if (!checked) {
        return NULL;
    }
    return export_add(json_node_get_object(checked), errp);
}

/* The validated BlockExportOptions of block-export-add. */
BdExport *bd_export_add_checked(JsonObject *args, GError **errp)
{
    return export_add(args, errp);
}

JsonArray *bd_export_query(void)
{
    JsonArray *list = json_array_new();

    for (GList *l = exports; l; l = l->next) {
        BdExport *exp = l->data;
        JsonObject *info = json_object_new();
        BdNode *node = exp->blk ? bd_blk_get_node(exp->blk) : NULL;

        json_object_set_string_member(info, "id", exp->id);
        json_object_set_string_member(info, "type", exp->type->name);
        /* where the export is now: a pivot (active commit) may move it */
        json_object_set_string_member(info, "node-name",
                                      node ? bd_node_get_name(node)
                                           : exp->node_name);
        json_object_set_boolean_member(info, "shutting-down",
                                       !exp->user_owned);
        json_array_add_object_element(list, info);
    }
    return list;
}

static void exports_shutdown(void *opaque)
{
    bd_export_close_all(NULL);
}

void bd_export_init(void)
{
    bd_export_register_qmp_commands();
    bd_shutdown_add_notifier(exports_shutdown, NULL);
}
