/*
 * block-qcow2: the qcow2 format driver, its options and its life cycle
 * (open, close, limits).  The format's logic lives in qcow2-*.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "block-qcow2-schema.h"

#define DEFAULT_L2_CACHE_MAX_SIZE (32 * 1024 * 1024)
#define MIN_L2_CACHE_ENTRIES 2
#define MIN_REFCOUNT_CACHE_ENTRIES 4
#define DEFAULT_CACHE_CLEAN_INTERVAL 600

#define FAIL(...) do { \
        bd_error_setg(errp, __VA_ARGS__); \
        return false; \
    } while (0)

/* --- options --- */

static bool opt_bool(JsonObject *o, const char *name, bool dflt)
{
    return json_object_has_member(o, name) ?
           json_object_get_boolean_member(o, name) : dflt;
}

static int overlap_mode_bits(const char *mode)
{
    if (!strcmp(mode, "none")) {
        return 0;
    }
    if (!strcmp(mode, "constant")) {
        return QCOW2_OL_CONSTANT;
    }
    if (!strcmp(mode, "all")) {
        return QCOW2_OL_ALL;
    }
    return QCOW2_OL_CACHED;
}

static int parse_overlap_check(JsonObject *opts)
{
    static const struct {
        const char *name;
        int bit;
    } flags[] = {
        { "main-header", QCOW2_OL_MAIN_HEADER },
        { "active-l1", QCOW2_OL_ACTIVE_L1 },
        { "active-l2", QCOW2_OL_ACTIVE_L2 },
        { "refcount-table", QCOW2_OL_REFCOUNT_TABLE },
        { "refcount-block", QCOW2_OL_REFCOUNT_BLOCK },
        { "snapshot-table", QCOW2_OL_SNAPSHOT_TABLE },
        { "inactive-l1", QCOW2_OL_INACTIVE_L1 },
        { "inactive-l2", QCOW2_OL_INACTIVE_L2 },
        { "bitmap-directory", QCOW2_OL_BITMAP_DIRECTORY },
    };
    JsonNode *n = json_object_get_member(opts, "overlap-check");
    JsonObject *f;
    int bits;

    if (!n) {
        return QCOW2_OL_CACHED;
    }
    if (JSON_NODE_HOLDS_VALUE(n)) {
        return overlap_mode_bits(json_node_get_string(n));
    }
    f = json_node_get_object(n);
    bits = overlap_mode_bits(json_object_has_member(f, "template") ?
                             json_object_get_string_member(f, "template") :
                             "cached");
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (json_object_has_member(f, flags[i].name)) {
            if (json_object_get_boolean_member(f, flags[i].name)) {
                bits |= flags[i].bit;
            } else {
                bits &= ~flags[i].bit;
            }
        }
    }
    return bits;
}

/* QEMU's read_cache_sizes() and its checks, with its messages. */
static bool cache_sizes(Qcow2State *s, JsonObject *opts, int64_t *l2_size,
                        int64_t *l2_entry, int64_t *rc_size, GError **errp)
{
    bool comb_set = json_object_has_member(opts, "cache-size");
    bool l2_set = json_object_has_member(opts, "l2-cache-size");
    bool rc_set = json_object_has_member(opts, "refcount-cache-size");
    bool entry_set = json_object_has_member(opts, "l2-cache-entry-size");
    int64_t comb = comb_set ? json_object_get_int_member(opts, "cache-size")
                            : 0;
    int64_t max_l2_entries = (s->size + s->cluster_size - 1) /
                             s->cluster_size;
    int64_t max_l2_cache = ((max_l2_entries * s->l2_entry_size +
                             s->cluster_size - 1) / s->cluster_size) *
                           s->cluster_size;
    int64_t min_rc_cache = MIN_REFCOUNT_CACHE_ENTRIES * s->cluster_size;

    *l2_size = l2_set ? json_object_get_int_member(opts, "l2-cache-size")
                      : 0;
    *rc_size = rc_set ? json_object_get_int_member(opts,
                                                   "refcount-cache-size")
                      : 0;
    *l2_entry = entry_set ? json_object_get_int_member(opts,
                                                       "l2-cache-entry-size")
                          : s->cluster_size;
    if (comb_set && l2_set && rc_set) {
        FAIL("cache-size, l2-cache-size and refcount-cache-size may not be "
             "set at the same time");
    } else if (comb_set && l2_set && *l2_size > comb) {
        FAIL("l2-cache-size may not exceed cache-size");
    } else if (comb_set && rc_set && *rc_size > comb) {
        FAIL("refcount-cache-size may not exceed cache-size");
    }
    if (comb_set) {
        if (l2_set) {
            *rc_size = comb - *l2_size;
        } else if (rc_set) {
            *l2_size = comb - *rc_size;
        } else if (comb >= max_l2_cache + min_rc_cache) {
            *l2_size = max_l2_cache;
            *rc_size = comb - *l2_size;
        } else {
            *rc_size = MIN(comb, min_rc_cache);
            *l2_size = comb - *rc_size;
        }
    } else {
        if (!l2_set) {
            *l2_size = MIN(max_l2_cache, DEFAULT_L2_CACHE_MAX_SIZE);
        }
        if (!rc_set) {
            *rc_size = min_rc_cache;
        }
    }
    /* a cache that cannot cover the disk does better with small slices */
    if (*l2_size < max_l2_cache && !entry_set) {
        *l2_entry = MIN(s->cluster_size, 4096);
    }
    if (*l2_entry < (1 << QCOW2_MIN_CLUSTER_BITS) ||
        *l2_entry > s->cluster_size || (*l2_entry & (*l2_entry - 1))) {
        FAIL("L2 cache entry size must be a power of two between %d and "
             "the cluster size (%" G_GINT64_FORMAT ")",
             1 << QCOW2_MIN_CLUSTER_BITS, s->cluster_size);
    }
    return true;
}

/* --- opening children --- */

/* @name relative to the directory of the image file, as QEMU does. */
char *qcow2_relative_path(BdNode *node, BdChild *file, const char *name)
{
    g_autofree char *base = bd_node_get_filename(bd_child_get_node(file));
    g_autofree char *dir = NULL;

    if (g_path_is_absolute(name) || g_str_has_prefix(base, "json:")) {
        return g_strdup(name);
    }
    dir = g_path_get_dirname(base);
    return g_build_filename(dir, name, NULL);
    (void)node;
}

/*
 * Open the child @member from a definition the driver makes itself (a
 * file name from the header), through the same path as an option.
 */
static BdChild *open_named_child(BdNode *node, const char *member,
                                 const char *driver, const char *filename,
                                 bool read_only, BdChildRole role,
                                 GError **errp)
{
    g_autoptr(JsonObject) wrap = json_object_new();
    JsonObject *def = json_object_new();
    JsonObject *file = json_object_new();

    json_object_set_string_member(file, "driver", "file");
    json_object_set_string_member(file, "filename", filename);
    if (driver && strcmp(driver, "file")) {
        json_object_set_string_member(def, "driver", driver);
        json_object_set_object_member(def, "file", file);
    } else {
        json_object_unref(def);
        def = file;
    }
    if (read_only) {
        json_object_set_boolean_member(def, "read-only", true);
    }
    json_object_set_object_member(wrap, member, def);
    return bd_node_open_child(node, wrap, member, role, false, errp);
}

static bool open_data_file(Qcow2State *s, JsonObject *opts, GError **errp)
{
    bool given = json_object_has_member(opts, "data-file");

    if (!has_data_file(s)) {
        if (given) {
            FAIL("'data-file' can only be set for images with an external "
                 "data file");
        }
        if (s->data_file_raw) {
            FAIL("data-file-raw requires a data file");
        }
        s->data_file = s->file;
        return true;
    }
    if (given) {
        s->data_file = bd_node_open_child(s->node, opts, "data-file",
                                          BD_CHILD_DATA, false, errp);
    } else if (s->image_data_file) {
        g_autofree char *path = qcow2_relative_path(s->node, s->file,
                                              s->image_data_file);

        s->data_file = open_named_child(s->node, "data-file", NULL, path,
                                        s->read_only, BD_CHILD_DATA, errp);
    } else {
        FAIL("'data-file' is required for this image");
    }
    return s->data_file != NULL;
}

static bool open_backing(Qcow2State *s, JsonObject *opts, GError **errp)
{
    JsonNode *b = json_object_get_member(opts, "backing");

    /* the image's own name for it shows even with backing null (QEMU) */
    if (s->backing_file) {
        s->full_backing_file = qcow2_relative_path(s->node, s->file,
                                                   s->backing_file);
    }
    if (b && JSON_NODE_HOLDS_NULL(b)) {
        return true;
    }
    if (b) {
        s->backing = bd_node_open_child(s->node, opts, "backing",
                                        BD_CHILD_COW, false, errp);
        if (!s->backing) {
            return false;
        }
    }
    if (!s->backing_file) {
        return true;
    }
    if (b) {
        return true;
    }
    if (!s->backing_format) {
        /*
         * Probing what the header does not name would let an image's
         * content choose how its backing file is read: refused.
         */
        FAIL("Backing file '%s' of the image has no format in the image "
             "header; give the backing node explicitly with 'backing'",
             s->backing_file);
    }
    s->backing = open_named_child(s->node, "backing", s->backing_format,
                                  s->full_backing_file, true, BD_CHILD_COW,
                                  errp);
    return s->backing != NULL;
}

/* --- open --- */

typedef struct OpenCo {
    Qcow2State *s;
    JsonObject *opts;
    unsigned flags;
    GError **errp;
    bool ok;
} OpenCo;

static bool read_tables(Qcow2State *s, GError **errp)
{
    int ret;

    if (s->l1_size) {
        s->l1_table = g_new0(uint64_t, s->l1_size);
        ret = qcow2_child_pread(s->file, s->l1_table_offset,
                                (int64_t)s->l1_size * 8, s->l1_table);
        if (ret < 0) {
            bd_error_setg(errp, "Could not read L1 table: %s", g_strerror(-ret));
            return false;
        }
        for (uint32_t i = 0; i < s->l1_size; i++) {
            s->l1_table[i] = GUINT64_FROM_BE(s->l1_table[i]);
        }
    }
    s->refcount_table_size = s->refcount_table_clusters <<
                             (s->cluster_bits - 3);
    s->refcount_table = g_new0(uint64_t, s->refcount_table_size);
    ret = qcow2_child_pread(s->file, s->refcount_table_offset,
                            (int64_t)s->refcount_table_size * 8,
                            s->refcount_table);
    if (ret < 0) {
        bd_error_setg(errp, "Could not initialize refcount handling: %s",
                    g_strerror(-ret));
        return false;
    }
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        s->refcount_table[i] = GUINT64_FROM_BE(s->refcount_table[i]);
        if (s->refcount_table[i]) {
            s->refcount_table_used = i + 1;
        }
    }
    return true;
}

bool qcow2_parse_runtime_opts(Qcow2State *s, JsonObject *opts,
                              unsigned flags, Qcow2RuntimeOpts *rt,
                              GError **errp)
{
    int64_t l2_cache_size, l2_entry, rc_cache_size, interval;

    /* QEMU's qcow2_update_options_prepare(), in its order */
    if (!cache_sizes(s, opts, &l2_cache_size, &l2_entry, &rc_cache_size,
                     errp)) {
        return false;
    }
    l2_cache_size = MAX(l2_cache_size / l2_entry, MIN_L2_CACHE_ENTRIES);
    rc_cache_size = MAX(rc_cache_size / s->cluster_size,
                        MIN_REFCOUNT_CACHE_ENTRIES);
    if (l2_cache_size > G_MAXINT) {
        FAIL("L2 cache size too big");
    }
    if (rc_cache_size > G_MAXINT) {
        FAIL("Refcount cache size too big");
    }
    rt->l2_cache_entries = l2_cache_size;
    rt->l2_entry_size = l2_entry;
    rt->refcount_cache_entries = rc_cache_size;
    interval = json_object_has_member(opts, "cache-clean-interval") ?
               json_object_get_int_member(opts, "cache-clean-interval") :
               DEFAULT_CACHE_CLEAN_INTERVAL;
    if (interval < 0 || interval > G_MAXUINT) {
        FAIL("Cache clean interval too big");
    }
    rt->cache_clean_interval = interval;
    rt->lazy_refcounts = opt_bool(opts, "lazy-refcounts",
                                  s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS);
    if (rt->lazy_refcounts && s->version < 3) {
        FAIL("Lazy refcounts require a qcow2 image with at least qemu 1.1 "
             "compatibility level");
    }
    rt->overlap_check = parse_overlap_check(opts);
    rt->pass_discard_request = opt_bool(opts, "pass-discard-request",
                                        flags & BD_OPEN_UNMAP);
    rt->pass_discard_snapshot = opt_bool(opts, "pass-discard-snapshot",
                                         true);
    rt->pass_discard_other = opt_bool(opts, "pass-discard-other", false);
    return true;
}

static bool do_open(Qcow2State *s, JsonObject *opts, unsigned flags,
                    GError **errp)
{
    g_autofree uint8_t *hdr = NULL;
    Qcow2RuntimeOpts rt;
    int64_t file_len;
    int64_t hdr_len;
    int ret;

    file_len = bd_child_co_getlength(s->file);
    if (file_len < 0) {
        FAIL("Could not read qcow2 header: %s", g_strerror(-file_len));
    }
    /* the header, its extensions and the backing name: one cluster */
    hdr_len = MIN(file_len, 1 << QCOW2_MAX_CLUSTER_BITS);
    hdr = g_malloc0(MAX(hdr_len, QCOW2_V3_MIN_HEADER_LEN + 8));
    ret = bd_child_co_pread(s->file, 0, hdr_len, hdr, 0);
    if (ret < 0) {
        FAIL("Could not read qcow2 header: %s", g_strerror(-ret));
    }
    if (!qcow2_parse_header(s, hdr, hdr_len, file_len, errp)) {
        return false;
    }
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && !s->read_only) {
        bd_error_setg(errp, "qcow2: Image is corrupt; cannot be opened read/write");
        return false;
    }
    if (!qcow2_check_tables(s, file_len, errp)) {
        return false;
    }
    if (s->have_encrypt_opts) {
        /* an image without encryption: QEMU's words */
        FAIL("No encryption in image header, but options specified format "
             "'%s'", s->encrypt_format);
    }

    if (!qcow2_parse_runtime_opts(s, opts, flags, &rt, errp)) {
        return false;
    }
    s->use_lazy_refcounts = rt.lazy_refcounts;
    s->discard_passthrough_request = rt.pass_discard_request;
    s->discard_passthrough_snapshot = rt.pass_discard_snapshot;
    s->discard_passthrough_other = rt.pass_discard_other;
    s->overlap_check = rt.overlap_check;
    s->cache_clean_interval = rt.cache_clean_interval;

    if (!read_tables(s, errp)) {
        return false;
    }
    ret = qcow2_read_snapshot_list(s);
    if (ret == 0) {
        ret = qcow2_read_snapshot_info(s);
    }
    if (ret < 0) {
        FAIL("Could not read snapshots: %s", g_strerror(-ret));
    }
    ret = qcow2_read_bitmap_list(s);
    if (ret < 0) {
        FAIL("Could not read the bitmap directory: %s", g_strerror(-ret));
    }
    s->l2_slice_size = rt.l2_entry_size / s->l2_entry_size;
    s->l2_cache = qcow2_cache_new(s->file, rt.l2_cache_entries,
                                  rt.l2_entry_size);
    s->refcount_cache = qcow2_cache_new(s->file, rt.refcount_cache_entries,
                                        s->cluster_size);
    if (!s->l2_cache || !s->refcount_cache) {
        FAIL("Could not allocate metadata caches");
    }
    if (!s->use_lazy_refcounts) {
        qcow2_cache_set_depends(s->l2_cache, s->refcount_cache);
    }
    if (!open_data_file(s, opts, errp) || !open_backing(s, opts, errp)) {
        return false;
    }
    if ((s->incompat & QCOW2_INCOMPAT_DIRTY) && !s->read_only) {
        /* refcounts left stale by lazy refcounts: repair, as QEMU does */
        bd_co_mutex_lock(&s->meta_lock);
        ret = qcow2_repair_dirty(s, errp);
        bd_co_mutex_unlock(&s->meta_lock);
        if (ret < 0) {
            return false;
        }
    }
    if (qcow2_load_bitmaps(s, errp) < 0) {
        return false;
    }
    if (!s->read_only && (s->autoclear & ~QCOW2_AUTOCLEAR_MASK)) {
        /* unknown autoclear features: their data may be stale from now */
        ret = qcow2_write_autoclear(s, s->autoclear & QCOW2_AUTOCLEAR_MASK);
        if (ret == 0) {
            ret = bd_child_co_flush(s->file);
        }
        if (ret < 0) {
            FAIL("Could not update qcow2 header: %s", g_strerror(-ret));
        }
    }
    return true;
}

static void open_co(void *opaque)
{
    OpenCo *o = opaque;

    o->ok = do_open(o->s, o->opts, o->flags, o->errp);
}

static void clean_timer_cb(void *opaque)
{
    Qcow2State *s = opaque;

    qcow2_cache_clean_unused(s->l2_cache);
    qcow2_cache_clean_unused(s->refcount_cache);
    bd_aio_timer_mod(s->clean_timer, bd_clock_ns() +
                     s->cache_clean_interval * 1000000000ll);
}

void qcow2_clean_timer_start(Qcow2State *s, BdAioContext *ctx)
{
    if (s->cache_clean_interval > 0) {
        s->clean_timer = bd_aio_timer_new(ctx, clean_timer_cb, s);
        bd_aio_timer_mod(s->clean_timer, bd_clock_ns() +
                         s->cache_clean_interval * 1000000000ll);
    }
}

void qcow2_clean_timer_stop(Qcow2State *s)
{
    if (s->clean_timer) {
        bd_aio_timer_free(s->clean_timer);
        s->clean_timer = NULL;
    }
}

static void free_state(Qcow2State *s)
{
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->refcount_cache);
    s->l2_cache = s->refcount_cache = NULL;
    g_clear_pointer(&s->opts, json_object_unref);
    g_clear_pointer(&s->l1_table, g_free);
    g_slist_free_full(s->retired_l1, g_free);
    s->retired_l1 = NULL;
    g_clear_pointer(&s->refcount_table, g_free);
    g_clear_pointer(&s->backing_file, g_free);
    g_clear_pointer(&s->full_backing_file, g_free);
    g_clear_pointer(&s->encrypt_format, g_free);
    qcow2_free_bitmap_list(s);
    qcow2_free_snapshot_list(s);
    qcow2_free_snapshot_info(s);
    g_clear_pointer(&s->backing_format, g_free);
    g_clear_pointer(&s->image_data_file, g_free);
    if (s->unknown_exts) {
        g_byte_array_unref(s->unknown_exts);
        s->unknown_exts = NULL;
    }
    if (s->unknown_header_fields) {
        g_byte_array_unref(s->unknown_header_fields);
        s->unknown_header_fields = NULL;
    }
    if (s->feature_table) {
        g_byte_array_unref(s->feature_table);
        s->feature_table = NULL;
    }
}

static bool qcow2_open(BdNode *node, JsonObject *opts, unsigned flags,
                       GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);
    OpenCo o = { s, opts, flags, errp, false };

    s->node = node;
    bd_co_mutex_init(&s->meta_lock);
    s->have_encrypt_opts = json_object_has_member(opts, "encrypt");
    if (s->have_encrypt_opts) {
        s->encrypt_format = g_strdup(json_object_get_string_member(
            json_object_get_object_member(opts, "encrypt"), "format"));
    }
    s->read_only = !(flags & BD_OPEN_RDWR);
    s->opts = json_object_ref(opts);
    s->file = bd_node_open_child(node, opts, "file",
                                 BD_CHILD_METADATA | BD_CHILD_PRIMARY,
                                 false, errp);
    if (!s->file) {
        /* what was taken above goes too (s->opts leaked: LeakSanitizer) */
        free_state(s);
        return false;
    }
    bd_run_co(open_co, &o);
    if (!o.ok) {
        free_state(s);
        return false;
    }
    qcow2_clean_timer_start(s, bd_node_get_aio_context(node));
    return true;
}

static void close_co(void *opaque)
{
    Qcow2State *s = opaque;
    g_autoptr(GError) err = NULL;

    bd_co_mutex_lock(&s->meta_lock);
    /* read-only, a bitmap added persistent cannot be stored: said so */
    if (!qcow2_unusable(s) && qcow2_store_bitmaps(s, &err) < 0) {
        fprintf(stderr, "%s: Lost persistent bitmaps during inactivation "
                "of node '%s': %s\n", g_get_prgname(),
                bd_node_get_name(s->node), err->message);
    }
    if (!s->read_only && qcow2_write_caches(s) == 0 &&
        bd_child_co_flush(s->file) == 0) {
        qcow2_mark_clean(s);
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

static void qcow2_close(BdNode *node)
{
    Qcow2State *s = bd_node_get_opaque(node);

    qcow2_clean_timer_stop(s);
    bd_run_co(close_co, s);
    free_state(s);
}

static bool qcow2_refresh_limits(BdNode *node, BdBlockLimits *bl,
                                 GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);

    bl->request_alignment = 1;
    bl->pdiscard_alignment = s->cluster_size;
    bl->pwrite_zeroes_alignment = s->subcluster_size;
    bl->opt_transfer = s->cluster_size;
    bl->supported_zero_flags = BD_REQ_MAY_UNMAP | BD_REQ_NO_FALLBACK;
    /* whole clusters, into unallocated ones (qcow2-compress-write.c) */
    bl->supported_write_flags = has_data_file(s) ? 0
                                                 : BD_REQ_WRITE_COMPRESSED;
    return true;
}

static int64_t qcow2_co_getlength(BdNode *node)
{
    Qcow2State *s = bd_node_get_opaque(node);

    return s->size;
}

static int qcow2_get_info(BdNode *node, bool *is_dirty)
{
    Qcow2State *s = bd_node_get_opaque(node);

    *is_dirty = s->incompat & QCOW2_INCOMPAT_DIRTY;
    return 0;
}

static void qcow2_detach_aio_context(BdNode *node)
{
    qcow2_clean_timer_stop(bd_node_get_opaque(node));
}

static void qcow2_attach_aio_context(BdNode *node, BdAioContext *ctx)
{
    qcow2_clean_timer_start(bd_node_get_opaque(node), ctx);
}

/*
 * x-blockdev-amend: QEMU 7.2's qcow2 amends only the keyslots of a LUKS
 * encrypted image, and this driver opens no encrypted image yet.
 */
static int qcow2_co_amend(BdNode *node, JsonObject *options, bool force,
                          GError **errp)
{
    (void)node;
    (void)force;
    if (json_object_has_member(options, "encrypt")) {
        bd_error_setg(errp, "image is not encrypted, can't amend");
        return -ENOTSUP;
    }
    return 0;
}

static const BdBlockDriver qcow2_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "qcow2",
    .description = "qcow2 image: the QEMU copy-on-write format",
    .instance_size = sizeof(Qcow2State),
    .flags = BD_DRIVER_FORMAT | BD_DRIVER_THREAD_SAFE,
    .open = qcow2_open,
    .close = qcow2_close,
    .refresh_limits = qcow2_refresh_limits,
    .co_getlength = qcow2_co_getlength,
    .co_preadv = qcow2_co_preadv,
    .co_pwritev = qcow2_co_pwritev,
    .co_pwrite_zeroes = qcow2_co_pwrite_zeroes,
    .co_pdiscard = qcow2_co_pdiscard,
    .co_truncate = qcow2_co_truncate,
    .co_create = qcow2_co_create,
    .reopen_prepare = qcow2_reopen_prepare,
    .reopen_commit = qcow2_reopen_commit,
    .reopen_abort = qcow2_reopen_abort,
    .co_flush = qcow2_co_flush,
    .co_block_status = qcow2_co_block_status,
    .get_info = qcow2_get_info,
    .query_image_info = qcow2_query_image_info,
    .can_store_new_dirty_bitmap = qcow2_can_store_new_dirty_bitmap,
    .remove_persistent_dirty_bitmap = qcow2_remove_persistent_dirty_bitmap,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_delete = qcow2_snapshot_delete,
    .co_change_backing_file = qcow2_co_change_backing_file,
    .detach_aio_context = qcow2_detach_aio_context,
    .attach_aio_context = qcow2_attach_aio_context,
    .co_amend = qcow2_co_amend,
};

static bool block_qcow2_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &qcow2_driver, errp);
}

BD_PLUGIN(.name = "block-qcow2",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the qcow2 format driver",
          .license = "GPL-2.0-or-later",
          .schema = block_qcow2_schema,
          .init = block_qcow2_init);
