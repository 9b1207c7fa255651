/*
 * Describing block nodes: query-named-block-nodes, query-block,
 * query-blockstats and x-debug-query-block-graph, with the member values
 * and member order of qemu-storage-daemon 7.2.
 *
 * Every object is filled in the order of its QAPI definition: the QMP
 * writer (core/json/json-writer.c) turns json-glib's insertion order
 * into QEMU's output order.
 */
#include <errno.h>
#include <string.h>

#include <blockd/error.h>

#include "block/block-qmp.h"
#include "block/dirty-bitmap.h"
#include "json/json-writer.h"
#include "qmp/qmp-dispatch.h"
#include "util/main-thread.h"

static const char *const *strong_names(BdNode *node)
{
    return node->drv->strong_options;
}

static bool has_strong_options(BdNode *node)
{
    const char *const *names = strong_names(node);

    for (; names && *names; names++) {
        if (json_object_has_member(node->options, *names)) {
            return true;
        }
    }
    return false;
}

static const char *option_string(BdNode *node, const char *name)
{
    JsonNode *n = json_object_get_member(node->options, name);

    return n && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == G_TYPE_STRING ?
           json_node_get_string(n) : NULL;
}

/*
 * The options that reproduce @node: driver, filename, the strong options
 * given, then each child's (QEMU lists children newest first).
 */
static JsonObject *full_open_options(BdNode *node)
{
    JsonObject *o = json_object_new();
    const char *const *names = strong_names(node);
    const char *filename = option_string(node, "filename");

    json_object_set_string_member(o, "driver", node->drv->name);
    if (filename) {
        json_object_set_string_member(o, "filename", filename);
    }
    for (; names && *names; names++) {
        JsonNode *v = json_object_get_member(node->options, *names);

        if (v) {
            json_object_set_member(o, *names, json_node_copy(v));
        }
    }
    for (guint i = node->children->len; i-- > 0;) {
        BdChild *c = node->children->pdata[i];

        json_object_set_object_member(o, c->name, full_open_options(c->node));
    }
    return o;
}

/* The plain file name of @node, or NULL when only "json:" describes it. */
static char *exact_filename(BdNode *node)
{
    BdChild *file;

    if (node->drv->exact_filename) {
        return node->drv->exact_filename(node);
    }
    file = bd_node_get_file(node);
    /*
     * A format above a protocol node, with nothing that changes what it
     * shows, is what opening the protocol's name with this format gives.
     */
    if (file && !(node->drv->flags & BD_DRIVER_FILTER) &&
        (file->node->drv->flags & (BD_DRIVER_FORMAT | BD_DRIVER_FILTER)) ==
        0 && !has_strong_options(node)) {
        return exact_filename(file->node);
    }
    return NULL;
}

char *bd_node_filename(BdNode *node)
{
    char *exact = exact_filename(node);
    g_autoptr(JsonObject) opts = NULL;
    g_autofree char *json = NULL;

    if (exact) {
        return exact;
    }
    opts = full_open_options(node);
    json = bd_qmp_json_format_object(opts, false);
    return g_strconcat("json:", json, NULL);
}

char *bd_node_get_filename(BdNode *node)
{
    return bd_node_filename(node);
}

int bd_node_get_info(BdNode *node, bool *is_dirty)
{
    BD_ASSERT_MAIN_LOOP();
    *is_dirty = false;
    return node->drv->get_info ? node->drv->get_info(node, is_dirty)
                               : -ENOTSUP;
}

int64_t bd_node_get_allocated_file_size(BdNode *node)
{
    int64_t sum = 0;

    if (node->drv->get_allocated_file_size) {
        return node->drv->get_allocated_file_size(node);
    }
    if (!(node->drv->flags & (BD_DRIVER_FORMAT | BD_DRIVER_FILTER))) {
        return -ENOTSUP;
    }
    /* formats and filters: what their data children hold */
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];
        int64_t n;

        if (!(c->role & (BD_CHILD_DATA | BD_CHILD_METADATA |
                         BD_CHILD_FILTERED))) {
            continue;
        }
        n = bd_node_get_allocated_file_size(c->node);
        if (n < 0) {
            return n;
        }
        sum += n;
    }
    return sum;
}

/* The backing node of @node, NULL if none. */
static BdNode *backing_node(BdNode *node)
{
    BdChild *c = bd_node_get_backing(node);

    return c ? c->node : NULL;
}

/*
 * The layer image information nests below @node: its backing node, or
 * for a filter driver the filtered node (QEMU 7.2 nests any filtered
 * child there, as "backing-image", and counts it in backing_file_depth).
 */
static BdNode *filter_or_cow_node(BdNode *node)
{
    BdChild *c;

    if (backing_node(node)) {
        return backing_node(node);
    }
    c = node->drv->flags & BD_DRIVER_FILTER ? bd_node_get_file(node) : NULL;
    return c ? c->node : NULL;
}

/*
 * A filter shows the cluster size of the node it filters (QEMU's
 * bdrv_get_info() passes through filters that have none of their own).
 */
static void filter_cluster_size(BdNode *node, JsonObject *o)
{
    BdNode *below = node;
    JsonObject *tmp;

    while (below->drv && (below->drv->flags & BD_DRIVER_FILTER) &&
           !below->drv->query_image_info) {
        BdChild *c = bd_node_get_file(below);

        if (!c) {
            return;
        }
        below = c->node;
    }
    if (below == node || !below->drv || !below->drv->query_image_info) {
        return;
    }
    tmp = json_object_new();
    below->drv->query_image_info(below, tmp);
    if (json_object_has_member(tmp, "cluster-size")) {
        json_object_set_int_member(o, "cluster-size",
                                   json_object_get_int_member(
                                       tmp, "cluster-size"));
    }
    json_object_unref(tmp);
}

static JsonObject *image_info(BdNode *node, bool flat)
{
    JsonObject *o = json_object_new();
    int64_t actual = bd_node_get_allocated_file_size(node);
    g_autofree char *filename = bd_node_filename(node);
    bool dirty;

    json_object_set_string_member(o, "filename", filename);
    json_object_set_string_member(o, "format", node->drv->name);
    if (bd_node_get_info(node, &dirty) == 0) {
        json_object_set_boolean_member(o, "dirty-flag", dirty);
    }
    if (actual >= 0) {
        json_object_set_int_member(o, "actual-size", actual);
    }
    json_object_set_int_member(o, "virtual-size", node->total_bytes);
    if (node->drv->query_image_info) {
        node->drv->query_image_info(node, o);
    } else {
        filter_cluster_size(node, o);
    }
    if (!flat && filter_or_cow_node(node)) {
        json_object_set_object_member(o, "backing-image",
                                      image_info(filter_or_cow_node(node),
                                                 flat));
    }
    return o;
}

static const char *detect_zeroes_name(BdDetectZeroes dz)
{
    switch (dz) {
    case BD_DETECT_ZEROES_ON:
        return "on";
    case BD_DETECT_ZEROES_UNMAP:
        return "unmap";
    default:
        return "off";
    }
}

JsonObject *bd_node_device_info(BdNode *node, bool flat)
{
    static const char *const limits[] = {
        "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr",
    };
    JsonObject *o = json_object_new();
    JsonObject *cache = json_object_new();
    g_autofree char *filename = bd_node_filename(node);
    JsonArray *bitmaps;

    int depth = 0;

    /* QEMU counts the chain only for the nested (not flat) answer */
    for (BdNode *b = flat ? NULL : filter_or_cow_node(node); b;
         b = filter_or_cow_node(b)) {
        depth++;
    }
    json_object_set_string_member(o, "file", filename);
    json_object_set_string_member(o, "node-name", node->node_name);
    json_object_set_boolean_member(o, "ro", node->read_only);
    json_object_set_string_member(o, "drv", node->drv->name);
    if (backing_node(node)) {
        g_autofree char *bf = bd_node_filename(backing_node(node));

        json_object_set_string_member(o, "backing_file", bf);
    }
    json_object_set_int_member(o, "backing_file_depth", depth);
    json_object_set_boolean_member(o, "encrypted", false);
    json_object_set_string_member(o, "detect_zeroes",
                                  detect_zeroes_name(node->detect_zeroes));
    /* throttling belongs to guest devices' backends, which qsd lacks */
    for (size_t i = 0; i < G_N_ELEMENTS(limits); i++) {
        json_object_set_int_member(o, limits[i], 0);
    }
    json_object_set_object_member(o, "image", image_info(node, flat));
    json_object_set_boolean_member(cache, "writeback", true);
    json_object_set_boolean_member(cache, "direct",
                                   node->open_flags & BD_OPEN_CACHE_DIRECT);
    json_object_set_boolean_member(cache, "no-flush",
                                   node->open_flags & BD_OPEN_NO_FLUSH);
    json_object_set_object_member(o, "cache", cache);
    json_object_set_int_member(o, "write_threshold",
                               (int64_t)node->write_threshold);
    bitmaps = bd_node_dirty_bitmaps_info(node);
    if (bitmaps) {
        json_object_set_array_member(o, "dirty-bitmaps", bitmaps);
    }
    return o;
}

/* A node holding @a, which it takes over (json_node_init_array() refs). */
static JsonNode *array_node(JsonArray *a)
{
    JsonNode *n = json_node_init_array(json_node_alloc(), a);

    json_array_unref(a);
    return n;
}

static bool qmp_query_named_block_nodes(JsonObject *args, JsonNode **ret,
                                        GError **errp)
{
    GPtrArray *all = bd_node_all();
    bool flat = json_object_has_member(args, "flat") &&
                json_object_get_boolean_member(args, "flat");
    JsonArray *a = json_array_new();

    /* newest first, as QEMU lists them */
    for (guint i = all->len; i-- > 0;) {
        json_array_add_object_element(a, bd_node_device_info(all->pdata[i],
                                                             flat));
    }
    *ret = array_node(a);
    return true;
}

/*
 * qemu-storage-daemon has no guest devices, so its backends are all
 * anonymous (exports, jobs) and neither query-block nor the backend
 * level of query-blockstats ever lists one; blockd's are the same.
 */
static bool qmp_query_block(JsonObject *args, JsonNode **ret, GError **errp)
{
    *ret = array_node(json_array_new());
    return true;
}

/*
 * A node's BlockStats.  QEMU keeps the request counters on backends
 * only: at node level everything is zero but the highest write offset.
 */
static JsonObject *node_stats(BdNode *node)
{
    static const char *const zero_counters[] = {
        "rd_bytes", "wr_bytes", "unmap_bytes", "rd_operations",
        "wr_operations", "flush_operations", "unmap_operations",
        "rd_total_time_ns", "wr_total_time_ns", "flush_total_time_ns",
        "unmap_total_time_ns",
    };
    static const char *const zero_counters2[] = {
        "rd_merged", "wr_merged", "unmap_merged",
        "failed_rd_operations", "failed_wr_operations",
        "failed_flush_operations", "failed_unmap_operations",
        "invalid_rd_operations", "invalid_wr_operations",
        "invalid_flush_operations", "invalid_unmap_operations",
    };
    JsonObject *o = json_object_new();
    JsonObject *s = json_object_new();
    BdChild *file = bd_node_get_file(node);
    int64_t highest;

    for (size_t i = 0; i < G_N_ELEMENTS(zero_counters); i++) {
        json_object_set_int_member(s, zero_counters[i], 0);
    }
    /* requests in IOThreads update it under the same lock */
    g_mutex_lock(&node->reqs_lock);
    highest = node->stats.wr_highest_offset;
    g_mutex_unlock(&node->reqs_lock);
    json_object_set_int_member(s, "wr_highest_offset", highest);
    for (size_t i = 0; i < G_N_ELEMENTS(zero_counters2); i++) {
        json_object_set_int_member(s, zero_counters2[i], 0);
    }
    json_object_set_boolean_member(s, "account_invalid", false);
    json_object_set_boolean_member(s, "account_failed", false);
    json_object_set_array_member(s, "timed_stats", json_array_new());

    json_object_set_string_member(o, "node-name", node->node_name);
    json_object_set_object_member(o, "stats", s);
    if (file) {
        /* QEMU names the file child's statistics "parent" */
        json_object_set_object_member(o, "parent", node_stats(file->node));
    }
    return o;
}

static bool qmp_query_blockstats(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    bool nodes = json_object_has_member(args, "query-nodes") &&
                 json_object_get_boolean_member(args, "query-nodes");
    JsonArray *a = json_array_new();

    if (nodes) {
        GPtrArray *all = bd_node_all();

        for (guint i = 0; i < all->len; i++) {
            json_array_add_object_element(a, node_stats(all->pdata[i]));
        }
    }
    *ret = array_node(a);
    return true;
}

/* ---- x-debug-query-block-graph ---- */

typedef struct GraphDump {
    GHashTable *ids;            /* vertex pointer -> id */
    uint64_t next_id;
    JsonArray *nodes, *edges;   /* built newest first, like QEMU's lists */
} GraphDump;

/* Vertex ids are handed out on first sight, as QEMU does. */
static uint64_t vertex_id(GraphDump *g, const void *vertex)
{
    gpointer id = g_hash_table_lookup(g->ids, vertex);

    if (!id) {
        id = GSIZE_TO_POINTER(++g->next_id);
        g_hash_table_insert(g->ids, (gpointer)vertex, id);
    }
    return GPOINTER_TO_SIZE(id);
}

static void dump_vertex(GraphDump *g, const void *vertex, const char *type,
                        const char *name)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_alloc();

    json_object_set_int_member(o, "id", (int64_t)vertex_id(g, vertex));
    json_object_set_string_member(o, "type", type);
    json_object_set_string_member(o, "name", name);
    json_array_add_element(g->nodes, json_node_init_object(n, o));
    json_object_unref(o);
}

static JsonArray *perm_list(uint64_t perm)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } names[] = {
        { BD_PERM_CONSISTENT_READ, "consistent-read" },
        { BD_PERM_WRITE, "write" },
        { BD_PERM_WRITE_UNCHANGED, "write-unchanged" },
        { BD_PERM_RESIZE, "resize" },
    };
    JsonArray *a = json_array_new();

    /* QEMU prepends while walking the enum: last value first */
    for (size_t i = G_N_ELEMENTS(names); i-- > 0;) {
        if (perm & names[i].bit) {
            json_array_add_string_element(a, names[i].name);
        }
    }
    return a;
}

static void dump_edge(GraphDump *g, const void *parent, BdChild *c)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_alloc();

    json_object_set_int_member(o, "parent", (int64_t)vertex_id(g, parent));
    json_object_set_int_member(o, "child", (int64_t)vertex_id(g, c->node));
    json_object_set_string_member(o, "name", c->name);
    json_object_set_array_member(o, "perm", perm_list(c->perm));
    json_object_set_array_member(o, "shared-perm", perm_list(c->shared));
    json_array_add_element(g->edges, json_node_init_object(n, o));
    json_object_unref(o);
}

/* Reverse @a into a new array (QEMU's lists are built by prepending). */
static JsonArray *reversed(JsonArray *a)
{
    JsonArray *r = json_array_new();

    for (guint i = json_array_get_length(a); i-- > 0;) {
        json_array_add_element(r, json_array_dup_element(a, i));
    }
    return r;
}

static bool qmp_x_debug_query_block_graph(JsonObject *args, JsonNode **ret,
                                          GError **errp)
{
    GPtrArray *all = bd_node_all();
    g_autoptr(GPtrArray) backends = g_ptr_array_new();
    g_autoptr(JsonArray) nodes = json_array_new();
    g_autoptr(JsonArray) edges = json_array_new();
    GraphDump g = {
        .ids = g_hash_table_new(g_direct_hash, g_direct_equal),
        .nodes = nodes,
        .edges = edges,
    };
    JsonObject *o = json_object_new();

    /*
     * Backends first.  The core keeps no list of them: each is found
     * through the root edge it holds, in the order of the nodes they use
     * (a backend with no node inserted is not shown).
     */
    for (guint i = 0; i < all->len; i++) {
        BdNode *node = all->pdata[i];

        for (guint j = node->parents->len; j-- > 0;) {
            BdChild *c = node->parents->pdata[j];

            if (c->blk && !g_ptr_array_find(backends, c->blk, NULL)) {
                g_ptr_array_add(backends, c->blk);
            }
        }
    }
    for (guint i = 0; i < backends->len; i++) {
        BdBlockBackend *blk = backends->pdata[i];
        BdNode *node = bd_blk_node(blk);

        dump_vertex(&g, blk, "block-backend", bd_blk_name(blk) ?
                    bd_blk_name(blk) : "");
        for (guint j = 0; node && j < node->parents->len; j++) {
            BdChild *c = node->parents->pdata[j];

            if (c->blk == blk) {
                dump_edge(&g, blk, c);
            }
        }
    }
    for (guint i = 0; i < all->len; i++) {
        BdNode *node = all->pdata[i];

        dump_vertex(&g, node, "block-driver", node->node_name);
        /* QEMU walks a node's children newest first */
        for (guint j = node->children->len; j-- > 0;) {
            dump_edge(&g, node, node->children->pdata[j]);
        }
    }
    json_object_set_array_member(o, "nodes", reversed(nodes));
    json_object_set_array_member(o, "edges", reversed(edges));
    g_hash_table_unref(g.ids);
    *ret = json_node_init_object(json_node_alloc(), o);
    json_object_unref(o);
    return true;
}

void bd_block_query_init(void)
{
    bd_qmp_register_command("query-named-block-nodes",
                            qmp_query_named_block_nodes, 0);
    bd_qmp_register_command("query-block", qmp_query_block, 0);
    bd_qmp_register_command("query-blockstats", qmp_query_blockstats, 0);
    bd_qmp_register_command("x-debug-query-block-graph",
                            qmp_x_debug_query_block_graph, 0);
    bd_qmp_register_command("block_resize", bd_qmp_block_resize, 0);
    bd_qmp_register_command("blockdev-reopen", bd_qmp_blockdev_reopen, 0);
    bd_qmp_register_command("block-set-write-threshold",
                            bd_qmp_block_set_write_threshold, 0);
}
