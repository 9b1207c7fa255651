/*
 * block-qcow2: blockdev-create (BlockdevCreateOptionsQcow2), in QEMU
 * 7.2's steps so that the image comes out as qemu-storage-daemon makes
 * it: a bare header and a refcount table with one block written
 * through the file, then the image opened as qcow2 to count those
 * clusters and write the full header (with its extensions), resized to
 * its size with the asked preallocation, given its backing file name,
 * and closed.  The options are checked first, in QEMU's order and with
 * its messages.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

#define DEFAULT_CLUSTER_SIZE 65536

typedef struct CreateOpts {
    int version;
    int64_t size;
    int64_t cluster_size;
    int cluster_bits;
    bool extended_l2;
    bool lazy_refcounts;
    int refcount_order;
    int compression_type;
    BdPreallocMode prealloc;
    bool data_file_raw;
    const char *backing_file;
    const char *backing_fmt;
} CreateOpts;

static BdPreallocMode parse_prealloc(const char *mode)
{
    static const char *const names[] = { "off", "metadata", "falloc", "full" };

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(mode, names[i])) {
            return (BdPreallocMode)i;
        }
    }
    return BD_PREALLOC_OFF;     /* the schema allows no other value */
}

static bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* QEMU's validate_cluster_size(). */
static bool check_cluster_size(uint64_t cluster_size, bool extended_l2,
                               GError **errp)
{
    /* QEMU takes the trailing zeroes of the low 32 bits */
    uint32_t low = (uint32_t)cluster_size;
    int bits = low ? __builtin_ctz(low) : 32;

    if (bits < QCOW2_MIN_CLUSTER_BITS || bits > QCOW2_MAX_CLUSTER_BITS ||
        (1ull << bits) != cluster_size) {
        bd_error_setg(errp, "Cluster size must be a power of two between %d "
                      "and %dk", 1 << QCOW2_MIN_CLUSTER_BITS,
                      1 << (QCOW2_MAX_CLUSTER_BITS - 10));
        return false;
    }
    if (extended_l2 && cluster_size < (1u << QCOW2_MIN_CLUSTER_BITS) * 32) {
        bd_error_setg(errp, "Extended L2 entries are only supported with "
                      "cluster sizes of at least %u bytes",
                      (1u << QCOW2_MIN_CLUSTER_BITS) * 32);
        return false;
    }
    return true;
}

/*
 * Everything QEMU checks before it opens the data file, in its order;
 * the data file's own checks follow in qcow2_co_create().
 */
static bool parse_options(JsonObject *o, CreateOpts *c, GError **errp)
{
    const char *version = bd_json_get_str(o, "version", "v3");
    int64_t refcount_bits;

    c->size = bd_json_get_int(o, "size", 0);
    if (c->size & 511) {
        bd_error_setg(errp, "Image size must be a multiple of 512 bytes");
        return false;
    }
    c->version = !strcmp(version, "v2") ? 2 : 3;
    c->cluster_size = bd_json_get_int(o, "cluster-size",
                                      DEFAULT_CLUSTER_SIZE);
    c->extended_l2 = bd_json_get_bool(o, "extended-l2", false);
    if (c->extended_l2 && c->version < 3) {
        bd_error_setg(errp, "Extended L2 entries are only supported with "
                      "compatibility level 1.1 and above (use version=v3 or "
                      "greater)");
        return false;
    }
    if (!check_cluster_size((uint64_t)c->cluster_size, c->extended_l2,
                            errp)) {
        return false;
    }
    c->cluster_bits = __builtin_ctzll(c->cluster_size);
    c->prealloc = parse_prealloc(bd_json_get_str(o, "preallocation", "off"));
    c->backing_file = bd_json_get_str(o, "backing-file", NULL);
    c->backing_fmt = bd_json_get_str(o, "backing-fmt", NULL);
    if (c->backing_file && c->prealloc != BD_PREALLOC_OFF &&
        !c->extended_l2) {
        bd_error_setg(errp, "Backing file and preallocation can only be used "
                      "at the same time if extended_l2 is on");
        return false;
    }
    if (c->backing_fmt && !c->backing_file) {
        bd_error_setg(errp, "Backing format cannot be used without backing "
                      "file");
        return false;
    }
    c->lazy_refcounts = bd_json_get_bool(o, "lazy-refcounts", false);
    if (c->version < 3 && c->lazy_refcounts) {
        bd_error_setg(errp, "Lazy refcounts only supported with compatibility "
                      "level 1.1 and above (use version=v3 or greater)");
        return false;
    }
    refcount_bits = bd_json_get_int(o, "refcount-bits", 16);
    if (refcount_bits > 64 || !is_power_of_2((uint64_t)refcount_bits)) {
        bd_error_setg(errp, "Refcount width must be a power of two and may "
                      "not exceed 64 bits");
        return false;
    }
    if (c->version < 3 && refcount_bits != 16) {
        bd_error_setg(errp, "Different refcount widths than 16 bits require "
                      "compatibility level 1.1 or above (use version=v3 or "
                      "greater)");
        return false;
    }
    c->refcount_order = __builtin_ctzll(refcount_bits);
    c->data_file_raw = bd_json_get_bool(o, "data-file-raw", false);
    if (c->data_file_raw && !json_object_has_member(o, "data-file")) {
        bd_error_setg(errp, "data-file-raw requires data-file");
        return false;
    }
    if (c->data_file_raw && c->backing_file) {
        bd_error_setg(errp, "Backing file and data-file-raw cannot be used at "
                      "the same time");
        return false;
    }
    if (c->data_file_raw && c->prealloc == BD_PREALLOC_OFF) {
        /*
         * A raw data file reads the same with or without the metadata:
         * the L2 tables must map it 1:1, so QEMU preallocates them.
         */
        c->prealloc = BD_PREALLOC_METADATA;
    }
    if (json_object_has_member(o, "data-file") && c->version < 3) {
        bd_error_setg(errp, "External data files are only supported with "
                      "compatibility level 1.1 and above (use version=v3 or "
                      "greater)");
        return false;
    }
    return true;
}

/* The compression type, checked after the data file is open (QEMU). */
static bool parse_compression(JsonObject *o, CreateOpts *c, GError **errp)
{
    const char *type = bd_json_get_str(o, "compression-type", "zlib");

    c->compression_type = QCOW2_COMPRESSION_ZLIB;
    if (strcmp(type, "zlib")) {
        if (c->version < 3) {
            bd_error_setg(errp, "Non-zlib compression type is only supported "
                          "with compatibility level 1.1 and above (use "
                          "version=v3 or greater)");
            return false;
        }
        c->compression_type = QCOW2_COMPRESSION_ZSTD;
    }
    return true;
}

/*
 * The bare image QEMU writes first: a header without extensions, the
 * refcount table in cluster 1 with one refcount block in cluster 2.
 * Their refcounts come later, counted by the qcow2 driver itself.
 */
static int write_bare_image(BdNode *file, const CreateOpts *c,
                            bool data_file, GError **errp)
{
    int64_t cs = c->cluster_size;
    g_autofree uint8_t *hdr = g_malloc0(cs);
    g_autofree uint64_t *reftable = g_malloc0(2 * cs);
    uint64_t incompat = 0;
    BdBlockBackend *blk;
    uint32_t v32;
    uint64_t v64;
    int ret;

#define PUT32(off, v) (v32 = GUINT32_TO_BE(v), memcpy(hdr + (off), &v32, 4))
#define PUT64(off, v) (v64 = GUINT64_TO_BE(v), memcpy(hdr + (off), &v64, 8))
    PUT32(0, QCOW_MAGIC);
    PUT32(4, c->version);
    PUT32(20, c->cluster_bits);
    PUT64(HDR_REFTABLE_OFFSET, cs);
    PUT32(56, 1);
    if (data_file) {
        incompat |= QCOW2_INCOMPAT_DATA_FILE;
    }
    if (c->compression_type != QCOW2_COMPRESSION_ZLIB) {
        incompat |= QCOW2_INCOMPAT_COMPRESSION;
    }
    if (c->extended_l2) {
        incompat |= QCOW2_INCOMPAT_EXTL2;
    }
    PUT64(HDR_INCOMPAT, incompat);
    PUT64(80, c->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
    PUT64(88, c->data_file_raw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0);
    PUT32(96, c->refcount_order);
    PUT32(100, 112);
    hdr[104] = c->compression_type;
#undef PUT32
#undef PUT64
    reftable[0] = GUINT64_TO_BE(2 * cs);

    /* writes past the end grow the file: it takes RESIZE */
    blk = bd_blk_new(NULL, BD_PERM_WRITE | BD_PERM_RESIZE, BD_PERM_ALL);
    if (!bd_blk_insert(blk, file, errp)) {
        bd_blk_unref(blk);
        return -EPERM;
    }
    ret = bd_blk_co_pwrite(blk, 0, cs, hdr, 0);
    if (ret < 0) {
        bd_error_setg(errp, "Could not write qcow2 header: %s",
                      g_strerror(-ret));
        goto out;
    }
    ret = bd_blk_co_pwrite(blk, cs, 2 * cs, reftable, 0);
    if (ret < 0) {
        bd_error_setg(errp, "Could not write refcount table: %s",
                      g_strerror(-ret));
    }
out:
    bd_blk_unref(blk);
    return ret;
}

/* The bare image as a qcow2 node, over the nodes the options named. */
static BdNode *open_image(BdNode *file, BdNode *data, GError **errp)
{
    g_autoptr(JsonObject) o = json_object_new();

    json_object_set_string_member(o, "driver", "qcow2");
    json_object_set_string_member(o, "file", bd_node_get_name(file));
    if (data) {
        json_object_set_string_member(o, "data-file", bd_node_get_name(data));
    }
    {
        g_autoptr(JsonNode) ref = json_node_new(JSON_NODE_OBJECT);

        json_node_set_object(ref, o);
        return bd_node_open_ref(ref, errp);
    }
}

/*
 * Count the header and refcount clusters, and write the full header
 * (with the data file's name), as QEMU does on the freshly opened image.
 */
static int finish_header(Qcow2State *s, BdNode *data, GError **errp)
{
    int64_t off;
    int ret;

    bd_co_mutex_lock(&s->meta_lock);
    off = qcow2_alloc_clusters(s, 3);
    if (off < 0) {
        ret = (int)off;
        bd_error_setg(errp, "Could not allocate clusters for qcow2 header "
                      "and refcount table: %s", g_strerror(-ret));
        goto out;
    }
    /* the bare image has no cluster in use but these: 0 is certain */
    g_assert(off == 0);
    if (data) {
        g_free(s->image_data_file);
        s->image_data_file = bd_node_get_filename(data);
    }
    ret = qcow2_update_header(s);
    if (ret < 0) {
        bd_error_setg(errp, "Could not update qcow2 header: %s",
                      g_strerror(-ret));
    }
out:
    bd_co_mutex_unlock(&s->meta_lock);
    return ret;
}

/* QEMU's qcow2_change_backing_file() on the new image. */
static int set_backing(Qcow2State *s, const CreateOpts *c, GError **errp)
{
    int ret = -EINVAL;

    bd_co_mutex_lock(&s->meta_lock);
    if (strlen(c->backing_file) <= 1023) {
        g_free(s->backing_file);
        g_free(s->backing_format);
        s->backing_file = g_strdup(c->backing_file);
        s->backing_format = g_strdup(c->backing_fmt);
        ret = qcow2_update_header(s);
    }
    bd_co_mutex_unlock(&s->meta_lock);
    if (ret < 0) {
        bd_error_setg(errp, "Could not assign backing file '%s' with format "
                      "'%s': %s", c->backing_file,
                      c->backing_fmt ? c->backing_fmt : "(null)",
                      g_strerror(-ret));
    }
    return ret;
}

int qcow2_co_create(JsonObject *o, GError **errp)
{
    CreateOpts c = { 0 };
    BdNode *file, *data = NULL, *image = NULL;
    BdBlockBackend *blk = NULL;
    Qcow2State *s;
    int ret;

    file = bd_node_open_ref(json_object_get_member(o, "file"), errp);
    if (!file) {
        return -EIO;
    }
    if (!parse_options(o, &c, errp)) {
        ret = -EINVAL;
        goto out;
    }
    if (json_object_has_member(o, "data-file")) {
        data = bd_node_open_ref(json_object_get_member(o, "data-file"), errp);
        if (!data) {
            ret = -EIO;
            goto out;
        }
    }
    if (!parse_compression(o, &c, errp)) {
        ret = -EINVAL;
        goto out;
    }
    if (json_object_has_member(o, "encrypt")) {
        /* refused before anything is written */
        bd_error_setg(errp, "qcow2: creating encrypted images (%s) is not "
                      "supported yet: encryption comes with the luks work",
                      bd_json_get_str(bd_json_get_object(o, "encrypt"),
                                      "format", ""));
        ret = -ENOTSUP;
        goto out;
    }

    ret = write_bare_image(file, &c, data != NULL, errp);
    if (ret < 0) {
        goto out;
    }
    image = open_image(file, data, errp);
    if (!image) {
        ret = -EIO;
        goto out;
    }
    s = bd_node_get_opaque(image);
    ret = finish_header(s, data, errp);
    if (ret < 0) {
        goto out;
    }
    blk = bd_blk_new(NULL, BD_PERM_WRITE | BD_PERM_RESIZE, BD_PERM_ALL);
    if (!bd_blk_insert(blk, image, errp)) {
        ret = -EPERM;
        goto out;
    }
    ret = bd_blk_co_truncate(blk, c.size, false, c.prealloc, 0, errp);
    if (ret < 0) {
        g_prefix_error(errp, "Could not resize image: ");
        goto out;
    }
    if (c.backing_file) {
        ret = set_backing(s, &c, errp);
        if (ret < 0) {
            goto out;
        }
    }
    ret = bd_blk_co_flush(blk);
    if (ret < 0) {
        bd_error_setg(errp, "Could not flush the new image: %s",
                      g_strerror(-ret));
    }
out:
    bd_blk_unref(blk);
    if (image) {
        /* closing writes back what the caches still hold */
        bd_node_unref(image);
    }
    if (data) {
        bd_node_unref(data);
    }
    bd_node_unref(file);
    return ret;
}
