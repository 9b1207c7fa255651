/*
 * The block graph: opening nodes from BlockdevOptions, node names,
 * children, references, deletion, drained sections, and the accessors the
 * plugin ABI gives drivers.  Permissions are in block-perm.c, requests in
 * block-io.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#include <blockd/error.h>
#include <blockd/json.h>

#include <blockd/block-chain.h>

#include "block/block-int.h"
#include "block/dirty-bitmap.h"
#include "plugin/plugin-loader.h"
#include "util/id.h"
#include "util/main-thread.h"

/* QEMU keeps node names in a 32-byte array. */
#define NODE_NAME_MAX 31

static GPtrArray *all_nodes;        /* BdNode *, creation order */
static GHashTable *named_nodes;     /* node_name -> BdNode * */
static uint64_t next_node_id = 1;
static uint64_t auto_name_counter;
static GHashTable *test_drivers;    /* name -> const BdBlockDriver * */

static void graph_init(void)
{
    if (!all_nodes) {
        all_nodes = g_ptr_array_new();
        named_nodes = g_hash_table_new(g_str_hash, g_str_equal);
    }
}

BdNode *bd_node_find(const char *node_name)
{
    BD_ASSERT_MAIN_LOOP();
    graph_init();
    return g_hash_table_lookup(named_nodes, node_name);
}

GPtrArray *bd_node_all(void)
{
    graph_init();
    return all_nodes;
}

/* As QEMU: "#block", a counter, two random digits. */
static char *generate_node_name(void)
{
    char *name;

    do {
        name = bd_id_generate("block", &auto_name_counter);
        if (!g_hash_table_contains(named_nodes, name)) {
            return name;
        }
        g_free(name);
    } while (true);
}

/* ---- coroutine helper ---- */

typedef struct RunCo {
    BdCoroutineEntry *entry;
    void *opaque;
    bool done;
} RunCo;

static void run_co_entry(void *opaque)
{
    RunCo *r = opaque;

    r->entry(r->opaque);
    r->done = true;
}

void bd_run_co(BdCoroutineEntry *entry, void *opaque)
{
    BdAioContext *ctx = bd_aio_main_context();
    RunCo r = { entry, opaque, false };

    if (bd_in_coroutine()) {
        entry(opaque);
        return;
    }
    bd_aio_coroutine_enter(ctx, bd_coroutine_create(run_co_entry, &r));
    while (!r.done) {
        bd_aio_poll(ctx, true);
    }
}

/* ---- limits and length ---- */

static void limits_defaults(BdNode *node)
{
    BdBlockLimits *bl = &node->bl;
    bool have_child = false;

    memset(bl, 0, sizeof(*bl));
    bl->request_alignment = 1;
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];
        BdBlockLimits *cl = &c->node->bl;

        if (!(c->role & (BD_CHILD_DATA | BD_CHILD_FILTERED | BD_CHILD_COW))) {
            continue;
        }
        if (!have_child) {
            bl->min_mem_alignment = cl->min_mem_alignment;
            bl->opt_mem_alignment = cl->opt_mem_alignment;
            bl->max_transfer = cl->max_transfer;
            bl->max_iov = cl->max_iov;
            have_child = true;
            continue;
        }
        bl->min_mem_alignment = MAX(bl->min_mem_alignment,
                                    cl->min_mem_alignment);
        bl->opt_mem_alignment = MAX(bl->opt_mem_alignment,
                                    cl->opt_mem_alignment);
        if (cl->max_transfer &&
            (!bl->max_transfer || cl->max_transfer < bl->max_transfer)) {
            bl->max_transfer = cl->max_transfer;
        }
        bl->max_iov = MIN(bl->max_iov, cl->max_iov);
    }
    if (!have_child) {
        bl->min_mem_alignment = 512;
        bl->opt_mem_alignment = (uint32_t)sysconf(_SC_PAGESIZE);
        bl->max_iov = IOV_MAX;
    }
}

bool bd_node_refresh_limits(BdNode *node, GError **errp)
{
    limits_defaults(node);
    if (node->drv->refresh_limits &&
        !node->drv->refresh_limits(node, &node->bl, errp)) {
        return false;
    }
    if (node->bl.request_alignment == 0 ||
        (node->bl.request_alignment & (node->bl.request_alignment - 1))) {
        bd_error_setg(errp, "Driver '%s' set an invalid request alignment %u",
                      node->drv->name, node->bl.request_alignment);
        return false;
    }
    return true;
}

typedef struct LengthCo {
    BdNode *node;
    int64_t ret;
} LengthCo;

static void length_co(void *opaque)
{
    LengthCo *l = opaque;

    l->ret = bd_node_co_getlength(l->node);
}

int bd_node_refresh_total_bytes(BdNode *node)
{
    LengthCo l = { node, 0 };

    node->total_bytes = -1;
    bd_run_co(length_co, &l);
    if (l.ret < 0) {
        node->total_bytes = 0;
        return (int)l.ret;
    }
    node->total_bytes = bd_length_in_sectors(l.ret);
    /* bitmaps a driver loaded at open were made with the image's size */
    bd_node_dirty_bitmaps_truncate(node, node->total_bytes);
    return 0;
}

/* ---- children ---- */

static void quiesce(BdNode *node, int delta);
static void resume_subtree(BdNode *node);

static void child_free(BdChild *c)
{
    g_free(c->name);
    g_free(c);
}

/* Attach without permission checks (done by the caller's refresh). */
static BdChild *child_link(BdNode *parent, BdBlockBackend *blk, BdNode *node,
                           const char *name, BdChildRole role)
{
    BdChild *c = g_new0(BdChild, 1);

    c->name = g_strdup(name);
    c->role = role;
    c->parent = parent;
    c->blk = blk;
    c->node = node;
    bd_node_ref(node);
    g_ptr_array_insert(node->parents, 0, c);
    if (parent) {
        g_ptr_array_add(parent->children, c);
        /* a child of a drained parent is drained as much (QEMU's too) */
        if (parent->quiesce_counter) {
            quiesce(node, parent->quiesce_counter);
        }
    }
    return c;
}

static void child_unlink(BdChild *c)
{
    BdNode *node = c->node;

    g_ptr_array_remove(node->parents, c);
    if (c->parent) {
        g_ptr_array_remove(c->parent->children, c);
        /* and leaves the parent's drained section */
        if (c->parent->quiesce_counter) {
            quiesce(node, -c->parent->quiesce_counter);
            resume_subtree(node);
        }
    }
    child_free(c);
    /* losing a user can only relax the child's permissions */
    bd_node_refresh_perms(node, NULL);
    bd_node_unref(node);
}

BdChild *bd_child_attach(BdNode *parent, BdBlockBackend *blk, BdNode *node,
                         const char *name, BdChildRole role, uint64_t perm,
                         uint64_t shared, GError **errp)
{
    BdChild *c = child_link(parent, blk, node, name, role);

    if (parent) {
        uint64_t pperm = parent->perm, pshared = parent->shared;

        if (!parent->parents->len) {
            /* nobody uses the parent yet: ask for what it will need */
            pperm = 0;
            pshared = BD_PERM_ALL;
        }
        if (parent->drv->child_perm) {
            parent->drv->child_perm(parent, NULL, role, pperm, pshared,
                                    &perm, &shared);
        } else {
            bd_block_default_child_perm(parent, NULL, role, pperm, pshared,
                                        &perm, &shared);
        }
    }
    c->perm = 0;
    c->shared = BD_PERM_ALL;
    if (!bd_child_set_perm(c, perm, shared, errp)) {
        g_ptr_array_remove(node->parents, c);
        if (parent) {
            g_ptr_array_remove(parent->children, c);
            if (parent->quiesce_counter) {
                quiesce(node, -parent->quiesce_counter);
                resume_subtree(node);
            }
        }
        child_free(c);
        bd_node_unref(node);
        return NULL;
    }
    return c;
}

void bd_child_detach(BdChild *child)
{
    child_unlink(child);
}

BdNode *bd_node_open_ref(JsonNode *ref, GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    BdNode *node;

    if (JSON_NODE_HOLDS_OBJECT(ref)) {
        return bd_node_open(json_node_get_object(ref), false, errp);
    }
    const char *name = JSON_NODE_HOLDS_VALUE(ref) ?
        json_node_get_string(ref) : NULL;

    node = name ? bd_node_find(name) : NULL;
    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      name ? name : "", name ? name : "");
        return NULL;
    }
    bd_node_ref(node);
    return node;
}

BdChild *bd_node_open_child(BdNode *parent, JsonObject *options,
                            const char *member, BdChildRole role,
                            bool allow_none, GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    JsonNode *ref = options ? json_object_get_member(options, member) : NULL;
    BdNode *node;
    BdChild *c;

    if (!ref || JSON_NODE_HOLDS_NULL(ref)) {
        if (!allow_none) {
            bd_error_setg(errp, "A block device must be specified for \"%s\"",
                          member);
        }
        return NULL;
    }
    node = bd_node_open_ref(ref, errp);
    if (!node) {
        return NULL;
    }
    c = bd_child_attach(parent, NULL, node, member, role, 0, BD_PERM_ALL,
                        errp);
    /* the edge holds its own reference now */
    bd_node_unref(node);
    return c;
}

/* ---- opening ---- */

void bd_block_register_test_driver(const BdBlockDriver *drv)
{
    if (!test_drivers) {
        test_drivers = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(test_drivers, (gpointer)drv->name, (gpointer)drv);
}

static const BdBlockDriver *find_driver(const char *name, GError **errp)
{
    const BdBlockDriver *drv = test_drivers ?
        g_hash_table_lookup(test_drivers, name) : NULL;

    return drv ? drv : bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, name, errp);
}

const BdBlockDriver *bd_block_driver_find(const char *name, GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return find_driver(name, errp);
}

/* The node's common options (BlockdevOptions' base) into flags. */
static bool parse_common(BdNode *node, JsonObject *o, GError **errp)
{
    JsonObject *cache = json_object_has_member(o, "cache") ?
        json_object_get_object_member(o, "cache") : NULL;
    const char *discard = bd_json_get_str(o, "discard", NULL);
    const char *dz = bd_json_get_str(o, "detect-zeroes", NULL);
    bool ro = bd_json_get_bool(o, "read-only", false);

    node->read_only = ro;
    node->open_flags = ro ? 0 : BD_OPEN_RDWR;
    if (cache && bd_json_get_bool(cache, "direct", false)) {
        node->open_flags |= BD_OPEN_CACHE_DIRECT;
    }
    if (cache && bd_json_get_bool(cache, "no-flush", false)) {
        node->open_flags |= BD_OPEN_NO_FLUSH;
    }
    if (g_strcmp0(discard, "unmap") == 0) {
        node->open_flags |= BD_OPEN_UNMAP;
    }
    if (bd_json_get_bool(o, "auto-read-only", false)) {
        node->open_flags |= BD_OPEN_AUTO_READ_ONLY;
    }
    if (bd_json_get_bool(o, "force-share", false)) {
        if (!ro) {
            bd_error_setg(errp,
                          "force-share=on can only be used with read-only "
                          "images");
            return false;
        }
        node->open_flags |= BD_OPEN_FORCE_SHARE;
    }
    node->detect_zeroes = BD_DETECT_ZEROES_OFF;
    if (g_strcmp0(dz, "on") == 0) {
        node->detect_zeroes = BD_DETECT_ZEROES_ON;
    } else if (g_strcmp0(dz, "unmap") == 0) {
        if (!(node->open_flags & BD_OPEN_UNMAP)) {
            bd_error_setg(errp,
                          "setting detect-zeroes to unmap is not allowed "
                          "without setting discard operation to unmap");
            return false;
        }
        node->detect_zeroes = BD_DETECT_ZEROES_UNMAP;
    }
    return true;
}

static bool assign_name(BdNode *node, const char *name, GError **errp)
{
    if (!name) {
        node->node_name = generate_node_name();
        node->auto_named = true;
        return true;
    }
    if (!bd_id_wellformed(name)) {
        bd_error_setg(errp, "Invalid node-name: '%s'", name);
        return false;
    }
    if (bd_node_find(name)) {
        bd_error_setg(errp, "Duplicate nodes with node-name='%s'", name);
        return false;
    }
    if (strlen(name) > NODE_NAME_MAX) {
        bd_error_setg(errp, "Node name too long");
        return false;
    }
    node->node_name = g_strdup(name);
    return true;
}

static void node_free(BdNode *node)
{
    bd_node_dirty_bitmaps_release_all(node);
    while (node->children->len) {
        child_unlink(node->children->pdata[node->children->len - 1]);
    }
    g_free(node->opaque);
    g_ptr_array_unref(node->children);
    g_ptr_array_unref(node->parents);
    if (node->options) {
        json_object_unref(node->options);
    }
    g_free(node->node_name);
    bd_node_release_aio_context(node);
    g_mutex_clear(&node->reqs_lock);
    g_free(node);
}

static BdNode *node_open_common(const BdBlockDriver *drv, const char *name,
                                JsonObject *options, bool monitor_owned,
                                GError **errp)
{
    BdNode *node = g_new0(BdNode, 1);

    graph_init();
    g_mutex_init(&node->reqs_lock);
    node->drv = drv;
    node->ctx = bd_aio_main_context();
    node->children = g_ptr_array_new();
    node->parents = g_ptr_array_new();
    bd_node_dirty_bitmaps_init(node);
    node->shared = BD_PERM_ALL;
    node->refcnt = 1;
    node->options = json_object_ref(options);
    node->id = next_node_id++;
    if (!parse_common(node, options, errp) ||
        !assign_name(node, name, errp)) {
        node_free(node);
        return NULL;
    }
    /* visible while children are opened, so their names cannot clash */
    g_hash_table_insert(named_nodes, node->node_name, node);
    node->opaque = drv->instance_size ? g_malloc0(drv->instance_size) : NULL;
    if (drv->open && !drv->open(node, options, node->open_flags, errp)) {
        goto fail;
    }
    if (!bd_node_refresh_limits(node, errp)) {
        goto fail_close;
    }
    /* Children opened in an IOThread pull their new parent in there. */
    for (guint i = 0; i < node->children->len; i++) {
        BdNode *child = ((BdChild *)node->children->pdata[i])->node;

        if (child->ctx != node->ctx &&
            !bd_node_set_aio_context(node, child->ctx, NULL, errp)) {
            goto fail_close;
        }
    }
    int ret = bd_node_refresh_total_bytes(node);
    if (ret < 0) {
        bd_error_setg(errp, "Could not refresh total sector count: %s",
                      g_strerror(-ret));
        goto fail_close;
    }
    node->monitor_owned = monitor_owned;
    g_ptr_array_add(all_nodes, node);
    return node;

fail_close:
    if (drv->close) {
        drv->close(node);
    }
fail:
    g_hash_table_remove(named_nodes, node->node_name);
    node_free(node);
    return NULL;
}

BdNode *bd_node_open(JsonObject *options, bool top, GError **errp)
{
    const char *name = bd_json_get_str(options, "node-name", NULL);
    const char *driver = bd_json_get_str(options, "driver", NULL);
    const BdBlockDriver *drv;

    if (top && !name) {
        bd_error_setg(errp, "'node-name' must be specified for the root node");
        return NULL;
    }
    drv = find_driver(driver ? driver : "", errp);
    if (!drv) {
        return NULL;
    }
    return node_open_common(drv, name, options, top, errp);
}

BdNode *bd_node_open_driver(const BdBlockDriver *drv, const char *node_name,
                            JsonObject *options, GError **errp)
{
    g_autoptr(JsonObject) empty = json_object_new();

    return node_open_common(drv, node_name, options ? options : empty, true,
                            errp);
}

/* ---- references and deletion ---- */

void bd_node_ref(BdNode *node)
{
    node->refcnt++;
}

void bd_node_unref(BdNode *node)
{
    g_assert(node->refcnt > 0);
    if (--node->refcnt > 0) {
        return;
    }
    bd_node_drained_begin(node);
    if (node->drv->close) {
        node->drv->close(node);
    }
    g_hash_table_remove(named_nodes, node->node_name);
    g_ptr_array_remove(all_nodes, node);
    node_free(node);
}

bool bd_node_delete_by_monitor(const char *node_name, GError **errp)
{
    BdNode *node = bd_node_find(node_name);

    if (!node) {
        bd_error_setg(errp,
                      "Failed to find node with node-name='%s'", node_name);
        return false;
    }
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->blk && !bd_blk_job_type(c->blk)) {
            bd_error_setg(errp, "Node %s is in use", node_name);
            return false;
        }
    }
    if (!bd_block_job_check_node(node, errp) ||
        !bd_node_check_backing_blocker(node, errp)) {
        return false;
    }
    if (!node->monitor_owned) {
        bd_error_setg(errp, "Node %s is not owned by the monitor", node_name);
        return false;
    }
    if (node->refcnt > 1) {
        bd_error_setg(errp, "Block device %s is in use", node_name);
        return false;
    }
    node->monitor_owned = false;
    bd_node_unref(node);
    return true;
}

/* ---- drained sections ---- */

static bool subtree_busy(BdNode *node)
{
    if (__atomic_load_n(&node->in_flight, __ATOMIC_SEQ_CST)) {
        return true;
    }
    for (guint i = 0; i < node->children->len; i++) {
        if (subtree_busy(((BdChild *)node->children->pdata[i])->node)) {
            return true;
        }
    }
    return false;
}

/*
 * Count a drained section in @node's subtree; a driver hears when its
 * node enters its first and leaves its last (BdBlockDriver's
 * drained_begin/_end), so that a throttle node lets its waiting requests
 * go instead of making the drain wait for them, as QEMU does.
 */
static void quiesce(BdNode *node, int delta)
{
    int now = __atomic_add_fetch(&node->quiesce_counter, delta,
                                 __ATOMIC_SEQ_CST);

    if (delta > 0 && now == 1 && node->drv && node->drv->drained_begin) {
        node->drv->drained_begin(node);
    } else if (delta < 0 && now == 0 && node->drv &&
               node->drv->drained_end) {
        node->drv->drained_end(node);
    }
    for (guint i = 0; i < node->children->len; i++) {
        quiesce(((BdChild *)node->children->pdata[i])->node, delta);
    }
}

void bd_node_drained_begin(BdNode *node)
{
    BdAioContext *ctx = node->ctx;

    quiesce(node, 1);
    /*
     * Requests of a node in an IOThread complete in that thread, which
     * kicks the main loop when a drained node goes idle (tracked_end()):
     * wait in our own loop then.
     */
    if (!bd_aio_context_in_home_thread(ctx)) {
        ctx = bd_aio_current_context();
    }
    while (subtree_busy(node)) {
        bd_aio_poll(ctx, true);
    }
}

static void resume_subtree(BdNode *node)
{
    if (!node->quiesce_counter) {
        bd_blk_drained_end_all(node);
    }
    for (guint i = 0; i < node->children->len; i++) {
        resume_subtree(((BdChild *)node->children->pdata[i])->node);
    }
}

void bd_node_drained_end(BdNode *node)
{
    g_assert(node->quiesce_counter > 0);
    quiesce(node, -1);
    resume_subtree(node);
}

/* ---- accessors of the plugin ABI ---- */

const char *bd_node_get_name(BdNode *node)
{
    return node->node_name;
}

const char *bd_node_get_driver_name(BdNode *node)
{
    return node->drv->name;
}

void *bd_node_get_opaque(BdNode *node)
{
    return node->opaque;
}

BdAioContext *bd_node_get_aio_context(BdNode *node)
{
    return node->ctx;
}

bool bd_node_is_read_only(BdNode *node)
{
    return node->read_only;
}

unsigned bd_node_get_open_flags(BdNode *node)
{
    return node->open_flags;
}

bool bd_node_apply_auto_read_only(BdNode *node, const char *errmsg,
                                  GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    if (node->read_only) {
        return true;
    }
    if (!(node->open_flags & BD_OPEN_AUTO_READ_ONLY)) {
        bd_error_setg(errp,
                      "%s: Block node is read-only", errmsg ? errmsg : "");
        return false;
    }
    node->read_only = true;
    node->open_flags &= ~BD_OPEN_RDWR;
    return true;
}

void bd_node_get_perm(BdNode *node, uint64_t *perm, uint64_t *shared)
{
    BD_ASSERT_MAIN_LOOP();
    if (perm) {
        *perm = node->perm;
    }
    if (shared) {
        *shared = node->shared;
    }
}

static BdChild *find_child(BdNode *node, const char *name)
{
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

BdChild *bd_node_get_file(BdNode *node)
{
    return find_child(node, "file");
}

uint32_t bd_node_get_request_alignment(BdNode *node)
{
    return node->bl.request_alignment;
}

uint32_t bd_node_get_max_transfer(BdNode *node)
{
    return node->bl.max_transfer;
}

BdChild *bd_node_get_backing(BdNode *node)
{
    return find_child(node, "backing");
}

void *bd_node_try_blockalign(BdNode *node, size_t size)
{
    size_t align = MAX(node->bl.opt_mem_alignment, sizeof(void *));
    void *p = NULL;

    if (posix_memalign(&p, align, size ? size : align) != 0) {
        return NULL;
    }
    return p;
}

BdNode *bd_child_get_node(BdChild *child)
{
    return child->node;
}

const char *bd_child_get_name(BdChild *child)
{
    return child->name;
}
