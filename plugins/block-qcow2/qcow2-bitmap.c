/*
 * block-qcow2: persistent dirty bitmaps in the bitmaps extension
 * (qcow2.txt "Bitmaps extension", bitmaps.rst), kept as QEMU 7.2 keeps
 * them:
 * - at open the bitmaps of the directory become the node's dirty bitmaps;
 *   one marked in use (left by a writer that did not close the image) is
 *   loaded empty and inconsistent: it can only be removed.  Opened
 *   writable, every bitmap is marked in use on disk until it is stored.
 * - at close (blockdev-del, quit, SIGTERM) the persistent bitmaps are
 *   written to new clusters, then a new directory, then the header points
 *   to it; the old tables and directory are freed last.
 * Crash safety comes from that order: until the header names the new
 * directory the old one (with its in-use flags) is the image's, so a kill
 * at any instant leaves bitmaps that the next open finds in use (and
 * handles as inconsistent) or bitmaps completely stored, and at worst
 * leaked clusters.  Marking in use at open clears the autoclear bit
 * before rewriting the directory in place and sets it after, as QEMU does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <blockd/dirty-bitmap.h>

#include "qcow2.h"

#define BME_MAX_TABLE_SIZE 0x8000000u
#define BME_MAX_PHYS_SIZE 0x20000000u
#define BME_MAX_GRANULARITY_BITS 31
#define BME_MIN_GRANULARITY_BITS 9
#define BME_MAX_NAME_SIZE 1023
#define QCOW2_MAX_BITMAPS 65535
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024 * QCOW2_MAX_BITMAPS)

#define BME_FLAG_IN_USE (1u << 0)
#define BME_FLAG_AUTO (1u << 1)
#define BME_RESERVED_FLAGS (~(BME_FLAG_IN_USE | BME_FLAG_AUTO))

#define BME_TABLE_ENTRY_RESERVED_MASK 0xff000000000001feull
#define BME_TABLE_ENTRY_OFFSET_MASK 0x00fffffffffffe00ull
#define BME_TABLE_ENTRY_FLAG_ALL_ONES 1ull

#define BT_DIRTY_TRACKING_BITMAP 1
#define DIR_ENTRY_HEADER 24

/* One entry of the bitmap directory. */
typedef struct Qcow2Bitmap {
    uint64_t table_offset;
    uint32_t table_size;        /* entries */
    uint32_t flags;
    uint8_t granularity_bits;
    char *name;
    BdDirtyBitmap *bitmap;      /* the node's bitmap to store in it */
} Qcow2Bitmap;

/* A bitmap table whose clusters are freed once it is unreferenced. */
typedef struct Qcow2BitmapTable {
    uint64_t offset;
    uint32_t size;
} Qcow2BitmapTable;

static void bitmap_free(gpointer p)
{
    Qcow2Bitmap *bm = p;

    g_free(bm->name);
    g_free(bm);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, v >> 32);
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t dir_entry_size(size_t name_len)
{
    return (DIR_ENTRY_HEADER + name_len + 7) & ~7ull;
}

/* Bytes of the serialized bitmap of @len bytes at 2^@gbits. */
static uint64_t bitmap_bytes_needed(int64_t len, int gbits)
{
    uint64_t granules = ((uint64_t)len + (1ull << gbits) - 1) >> gbits;

    return (granules + 63) / 64 * 8;
}

/* Guest bytes one cluster of bitmap data covers. */
static uint64_t bytes_per_cluster(Qcow2State *s, int gbits)
{
    return ((uint64_t)s->cluster_size * 8) << gbits;
}

/* QEMU's check_dir_entry(). */
static bool dir_entry_ok(Qcow2State *s, uint64_t tb_offset, uint32_t tb_size,
                         uint32_t flags, uint8_t type, uint8_t gbits,
                         uint32_t name_size)
{
    uint64_t phys;

    if (tb_size == 0 || tb_offset == 0 ||
        offset_into_cluster(s, tb_offset) || tb_size > BME_MAX_TABLE_SIZE ||
        gbits > BME_MAX_GRANULARITY_BITS ||
        gbits < BME_MIN_GRANULARITY_BITS || (flags & BME_RESERVED_FLAGS) ||
        name_size > BME_MAX_NAME_SIZE || type != BT_DIRTY_TRACKING_BITMAP) {
        return false;
    }
    phys = (uint64_t)tb_size * s->cluster_size;
    if (phys > BME_MAX_PHYS_SIZE) {
        return false;
    }
    /*
     * A table too small for the image is fine for a bitmap in use (after
     * a resize its table is rewritten only when it is stored): it loads
     * inconsistent.
     */
    return (flags & BME_FLAG_IN_USE) ||
           (uint64_t)s->size <= ((phys * 8) << gbits);
}

/* coroutine_fn: the directory as QEMU's bitmap_list_load() reads it. */
static GPtrArray *dir_load(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(bitmap_free);
    g_autofree uint8_t *dir = NULL;
    uint64_t size = s->bitmap_directory_size, pos = 0;
    uint32_t n = 0;
    int ret;

    if (size == 0) {
        bd_error_setg(errp, "Requested bitmap directory size is zero");
        return NULL;
    }
    if (size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        bd_error_setg(errp, "Requested bitmap directory size is too big");
        return NULL;
    }
    dir = g_malloc(size);
    ret = qcow2_child_pread(s->file, s->bitmap_directory_offset, size, dir);
    if (ret < 0) {
        bd_error_setg(errp, "Failed to read bitmap directory: %s",
                      g_strerror(-ret));
        return NULL;
    }
    while (pos < size) {
        const uint8_t *e = dir + pos;
        uint32_t name_size, extra;
        Qcow2Bitmap *bm;

        if (size - pos < DIR_ENTRY_HEADER) {
            goto broken;
        }
        if (++n > s->nb_bitmaps) {
            bd_error_setg(errp, "More bitmaps found than specified in header "
                          "extension");
            return NULL;
        }
        name_size = (uint32_t)e[18] << 8 | e[19];
        extra = be32(e + 20);
        if ((uint64_t)DIR_ENTRY_HEADER + extra + name_size > size - pos) {
            goto broken;
        }
        if (extra != 0) {
            bd_error_setg(errp, "Bitmap extra data is not supported");
            return NULL;
        }
        if (!dir_entry_ok(s, be64(e), be32(e + 8), be32(e + 12), e[16],
                          e[17], name_size)) {
            bd_error_setg(errp, "Bitmap '%.*s' doesn't satisfy the "
                          "constraints", (int)name_size,
                          (const char *)e + DIR_ENTRY_HEADER);
            return NULL;
        }
        bm = g_new0(Qcow2Bitmap, 1);
        bm->table_offset = be64(e);
        bm->table_size = be32(e + 8);
        bm->flags = be32(e + 12);
        bm->granularity_bits = e[17];
        bm->name = g_strndup((const char *)e + DIR_ENTRY_HEADER, name_size);
        g_ptr_array_add(list, bm);
        pos += dir_entry_size(name_size);
    }
    if (n != s->nb_bitmaps) {
        bd_error_setg(errp, "Less bitmaps found than specified in header "
                      "extension");
        return NULL;
    }
    if (pos != size) {
        goto broken;
    }
    return g_steal_pointer(&list);

broken:
    bd_error_setg(errp, "Broken bitmap directory");
    return NULL;
}

static uint8_t *dir_serialize(GPtrArray *list, uint64_t *size)
{
    uint64_t total = 0, pos = 0;
    uint8_t *dir;

    for (guint i = 0; i < list->len; i++) {
        total += dir_entry_size(strlen(((Qcow2Bitmap *)list->pdata[i])->name));
    }
    dir = g_malloc0(total);
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];
        size_t len = strlen(bm->name);
        uint8_t *e = dir + pos;

        put_be64(e, bm->table_offset);
        put_be32(e + 8, bm->table_size);
        put_be32(e + 12, bm->flags);
        e[16] = BT_DIRTY_TRACKING_BITMAP;
        e[17] = bm->granularity_bits;
        e[18] = len >> 8;
        e[19] = len & 0xff;
        /* extra_data_size stays 0 */
        memcpy(e + DIR_ENTRY_HEADER, bm->name, len);
        pos += dir_entry_size(len);
    }
    *size = total;
    return dir;
}

/*
 * coroutine_fn: rewrite the header's extension area with the bitmaps
 * extension describing @nb bitmaps at @offset (@size bytes), or without
 * it when @nb is 0, and the autoclear bitmaps bit to match; flushed.
 * Unknown and other extensions and the backing file name are kept.
 */
static int write_bitmaps_ext(Qcow2State *s, uint32_t nb, uint64_t offset,
                             uint64_t size)
{
    g_autofree uint8_t *old = g_malloc0(s->cluster_size);
    g_autofree uint8_t *buf = g_malloc0(s->cluster_size);
    uint64_t autoclear = nb ? s->autoclear | QCOW2_AUTOCLEAR_BITMAPS
                            : s->autoclear & ~QCOW2_AUTOCLEAR_BITMAPS;
    size_t end = s->backing_file_offset ? s->backing_file_offset
                                        : (size_t)s->cluster_size;
    size_t in = s->header_length, out = s->header_length;
    bool placed = false;
    int ret;

    ret = qcow2_child_pread(s->file, 0, s->cluster_size, old);
    if (ret < 0) {
        return ret;
    }
    memcpy(buf, old, s->header_length);
    while (in + 8 <= end) {
        uint32_t type = be32(old + in), len = be32(old + in + 4);
        size_t total = 8 + ((len + 7) & ~7u);

        if (type == QCOW2_EXT_END || total > end - in) {
            break;
        }
        if (type != QCOW2_EXT_BITMAPS) {
            if (out + total > (size_t)s->cluster_size) {
                return -ENOSPC;
            }
            memcpy(buf + out, old + in, total);
            out += total;
        } else if (nb && !placed) {
            /* the same place as before */
            put_be32(buf + out, QCOW2_EXT_BITMAPS);
            put_be32(buf + out + 4, 24);
            put_be32(buf + out + 8, nb);
            put_be64(buf + out + 16, size);
            put_be64(buf + out + 24, offset);
            out += 32;
            placed = true;
        }
        in += total;
    }
    if (nb && !placed) {
        if (out + 32 > (size_t)s->cluster_size) {
            return -ENOSPC;
        }
        put_be32(buf + out, QCOW2_EXT_BITMAPS);
        put_be32(buf + out + 4, 24);
        put_be32(buf + out + 8, nb);
        put_be64(buf + out + 16, size);
        put_be64(buf + out + 24, offset);
        out += 32;
    }
    out += 8;   /* the end marker, zeroes */
    if (s->backing_file_offset) {
        if (out + s->backing_file_size > (size_t)s->cluster_size) {
            return -ENOSPC;
        }
        memcpy(buf + out, old + s->backing_file_offset,
               s->backing_file_size);
        put_be64(buf + 8, out);
    }
    put_be64(buf + 88, autoclear);
    ret = bd_child_co_pwrite(s->file, 0, s->cluster_size, buf, 0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    if (s->backing_file_offset) {
        s->backing_file_offset = out;
    }
    s->autoclear = autoclear;
    s->nb_bitmaps = nb;
    s->bitmap_directory_offset = nb ? offset : 0;
    s->bitmap_directory_size = nb ? size : 0;
    return 0;
}

/* The directory as query-named-block-nodes shows it, read again. */
static void refresh_info(Qcow2State *s)
{
    qcow2_free_bitmap_list(s);
    if (qcow2_read_bitmap_list(s) < 0) {
        qcow2_free_bitmap_list(s);
        s->bitmaps = g_ptr_array_new();
    }
}

/* coroutine_fn, meta_lock held: free a table and its data clusters. */
static void free_table(Qcow2State *s, uint64_t offset, uint32_t size)
{
    g_autofree uint64_t *tb = NULL;

    if (!offset || !size) {
        return;
    }
    tb = g_new(uint64_t, size);
    if (qcow2_child_pread(s->file, offset, (int64_t)size * 8, tb) == 0) {
        for (uint32_t i = 0; i < size; i++) {
            uint64_t off = GUINT64_FROM_BE(tb[i]) &
                           BME_TABLE_ENTRY_OFFSET_MASK;

            if (off) {
                qcow2_free_clusters(s, off, s->cluster_size,
                                    s->discard_passthrough_other);
            }
        }
    }
    qcow2_free_clusters(s, offset, (int64_t)size * 8,
                        s->discard_passthrough_other);
}

/*
 * coroutine_fn, meta_lock held: write @list as the new directory in new
 * clusters, then the header; the old directory is freed after.
 */
static int dir_replace(Qcow2State *s, GPtrArray *list)
{
    uint64_t old_off = s->bitmap_directory_offset;
    uint64_t old_size = s->bitmap_directory_size;
    bool had = s->nb_bitmaps && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS);
    int64_t off = 0;
    uint64_t size = 0;
    int ret;

    if (list->len) {
        g_autofree uint8_t *dir = dir_serialize(list, &size);

        off = qcow2_alloc_clusters(s, size_to_clusters(s, size));
        if (off < 0) {
            return (int)off;
        }
        ret = qcow2_pre_write_overlap_check(s, 0, off, size);
        if (ret == 0) {
            ret = bd_child_co_pwrite(s->file, off, size, dir, 0);
        }
        if (ret < 0) {
            qcow2_free_clusters(s, off, size, false);
            return ret;
        }
    }
    /* what the new directory needs is on disk before the header names it */
    ret = qcow2_write_caches(s);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        ret = write_bitmaps_ext(s, list->len, off, size);
    }
    if (ret < 0) {
        if (list->len) {
            qcow2_free_clusters(s, off, size, false);
        }
        return ret;
    }
    if (had && old_size) {
        qcow2_free_clusters(s, old_off, old_size,
                            s->discard_passthrough_other);
    }
    refresh_info(s);
    return 0;
}

/*
 * coroutine_fn, meta_lock held: QEMU's update_ext_header_and_dir_in_place()
 * (at open, to set the in-use flags): the autoclear bit is clear while the
 * directory is rewritten, so a torn directory is never trusted.
 */
static int dir_update_in_place(Qcow2State *s, GPtrArray *list)
{
    g_autofree uint8_t *dir = NULL;
    uint64_t size;
    int ret;

    ret = qcow2_write_autoclear(s, s->autoclear & ~QCOW2_AUTOCLEAR_BITMAPS);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    dir = dir_serialize(list, &size);
    if (size != s->bitmap_directory_size) {
        return -EINVAL;
    }
    ret = bd_child_co_pwrite(s->file, s->bitmap_directory_offset, size, dir,
                             0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        ret = qcow2_write_autoclear(s, s->autoclear |
                                       QCOW2_AUTOCLEAR_BITMAPS);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    return ret;
}

/*
 * coroutine_fn: read the bitmap's table and data into @bitmap, with
 * QEMU's messages.
 */
static int load_data(Qcow2State *s, Qcow2Bitmap *bm, BdDirtyBitmap *bitmap,
                     GError **errp)
{
    g_autofree uint64_t *tb = g_new(uint64_t, bm->table_size);
    g_autofree uint8_t *buf = g_malloc(s->cluster_size);
    uint64_t limit = bytes_per_cluster(s, bm->granularity_bits);
    int ret;

    ret = qcow2_child_pread(s->file, bm->table_offset,
                            (int64_t)bm->table_size * 8, tb);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t e = GUINT64_FROM_BE(tb[i]);
        uint64_t off = e & BME_TABLE_ENTRY_OFFSET_MASK;

        if ((e & BME_TABLE_ENTRY_RESERVED_MASK) ||
            (off && ((e & BME_TABLE_ENTRY_FLAG_ALL_ONES) ||
                     offset_into_cluster(s, off)))) {
            ret = -EINVAL;
        }
        tb[i] = e;
    }
    if (ret < 0) {
        bd_error_setg(errp, "Could not read bitmap_table table from image "
                      "for bitmap '%s': %s", bm->name, g_strerror(-ret));
        return ret;
    }
    for (uint32_t i = 0; i < bm->table_size; i++) {
        uint64_t start = i * limit;
        uint64_t off = tb[i] & BME_TABLE_ENTRY_OFFSET_MASK;

        if (start >= (uint64_t)s->size) {
            break;
        }
        if (off) {
            ret = qcow2_child_pread(s->file, off, s->cluster_size, buf);
            if (ret < 0) {
                bd_error_setg(errp, "Could not read bitmap '%s' from image: "
                              "%s", bm->name, g_strerror(-ret));
                return ret;
            }
            bd_dirty_bitmap_deserialize_part(bitmap, buf, start, limit);
        } else if (tb[i] & BME_TABLE_ENTRY_FLAG_ALL_ONES) {
            bd_dirty_bitmap_deserialize_ones(bitmap, start, limit);
        }
    }
    return 0;
}

int qcow2_load_bitmaps(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GPtrArray) made = g_ptr_array_new();
    bool update = false;
    int ret;

    if (!s->nb_bitmaps) {
        return 0;
    }
    if (!(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        /* QEMU's words: the bitmaps are dropped from the header */
        fprintf(stderr, "%s: warning: %s\n", g_get_prgname(),
                s->version < 3 ?
                "This qcow2 v2 image contains bitmaps, but they may have "
                "been modified by a program without persistent bitmap "
                "support; so now they must all be considered inconsistent" :
                "a program lacking bitmap support modified this file, so "
                "all bitmaps are now considered inconsistent");
        fprintf(stderr, "Some clusters may be leaked, run 'qemu-img check "
                "-r' on the image file to fix.");
        s->nb_bitmaps = 0;
        s->bitmap_directory_offset = s->bitmap_directory_size = 0;
        if (!s->read_only && s->version >= 3) {
            ret = write_bitmaps_ext(s, 0, 0, 0);
            if (ret < 0) {
                bd_error_setg(errp, "Could not update qcow2 header: %s",
                              g_strerror(-ret));
                return ret;
            }
        }
        return 0;
    }
    if (s->nb_bitmaps > QCOW2_MAX_BITMAPS) {
        bd_error_setg(errp, "bitmaps_ext: Image has %u bitmaps, exceeding "
                      "the QEMU supported maximum of %d", s->nb_bitmaps,
                      QCOW2_MAX_BITMAPS);
        return -EINVAL;
    }
    if (offset_into_cluster(s, s->bitmap_directory_offset)) {
        bd_error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
        return -EINVAL;
    }
    list = dir_load(s, errp);
    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];
        BdDirtyBitmap *bitmap;

        bitmap = bd_dirty_bitmap_create_sized(s->node, s->size,
                                              1u << bm->granularity_bits,
                                              bm->name, errp);
        if (!bitmap) {
            goto fail;
        }
        g_ptr_array_add(made, bitmap);
        if (bm->flags & BME_FLAG_IN_USE) {
            /* left by a writer that did not store it: not to be trusted */
            bd_dirty_bitmap_set_inconsistent(bitmap);
        } else {
            ret = load_data(s, bm, bitmap, errp);
            if (ret < 0) {
                goto fail;
            }
            bm->flags |= BME_FLAG_IN_USE;
            update = true;
        }
        bd_dirty_bitmap_set_persistent(bitmap, true);
        if (!(bm->flags & BME_FLAG_AUTO)) {
            bd_dirty_bitmap_set_enabled(bitmap, false);
        }
    }
    if (update && !s->read_only) {
        ret = dir_update_in_place(s, list);
        if (ret < 0) {
            bd_error_setg(errp, "Can't update bitmap directory: %s",
                          g_strerror(-ret));
            goto fail;
        }
        refresh_info(s);
    }
    if (s->read_only) {
        for (guint i = 0; i < made->len; i++) {
            bd_dirty_bitmap_set_readonly(made->pdata[i], true);
        }
    }
    return 0;

fail:
    /* the core releases the node's bitmaps with the failed node */
    return -EINVAL;
}

/*
 * coroutine_fn, meta_lock held: write the data of @bitmap in new clusters
 * and its table; sets bm's table.  Clean clusters get no data cluster.
 */
static int store_data(Qcow2State *s, Qcow2Bitmap *bm, BdDirtyBitmap *bitmap,
                      GError **errp)
{
    int64_t len = bd_dirty_bitmap_size(bitmap);
    uint64_t limit = bytes_per_cluster(s, bm->granularity_bits);
    uint64_t tb_size = size_to_clusters(s, bitmap_bytes_needed(
                                            len, bm->granularity_bits));
    g_autofree uint64_t *tb = NULL;
    g_autofree uint8_t *buf = g_malloc(s->cluster_size);
    int64_t tb_off;
    int ret;

    tb_size = MAX(tb_size, 1);
    if (tb_size > BME_MAX_TABLE_SIZE ||
        tb_size * s->cluster_size > BME_MAX_PHYS_SIZE) {
        bd_error_setg(errp, "Bitmap '%s' is too big", bm->name);
        return -EINVAL;
    }
    tb = g_new0(uint64_t, tb_size);
    for (uint64_t i = 0; i < tb_size; i++) {
        uint64_t start = i * limit;
        uint64_t n;
        int64_t off;
        bool dirty = false;

        if (start >= (uint64_t)len) {
            break;
        }
        n = bd_dirty_bitmap_serialization_size(bitmap, start, limit);
        bd_dirty_bitmap_serialize_part(bitmap, buf, start, limit);
        memset(buf + n, 0, s->cluster_size - n);
        for (uint64_t k = 0; k < n && !dirty; k++) {
            dirty = buf[k] != 0;
        }
        if (!dirty) {
            continue;
        }
        off = qcow2_alloc_clusters(s, 1);
        if (off < 0) {
            ret = (int)off;
            bd_error_setg(errp, "Failed to allocate clusters for bitmap "
                          "'%s': %s", bm->name, g_strerror(-ret));
            goto fail;
        }
        tb[i] = off;
        ret = qcow2_pre_write_overlap_check(s, 0, off, s->cluster_size);
        if (ret == 0) {
            ret = bd_child_co_pwrite(s->file, off, s->cluster_size, buf, 0);
        }
        if (ret < 0) {
            bd_error_setg(errp, "Failed to write bitmap '%s' to file: %s",
                          bm->name, g_strerror(-ret));
            goto fail;
        }
    }
    tb_off = qcow2_alloc_clusters(s, size_to_clusters(s, tb_size * 8));
    if (tb_off < 0) {
        ret = (int)tb_off;
        bd_error_setg(errp, "Failed to allocate clusters for bitmap '%s': "
                      "%s", bm->name, g_strerror(-ret));
        goto fail;
    }
    for (uint64_t i = 0; i < tb_size; i++) {
        tb[i] = GUINT64_TO_BE(tb[i]);
    }
    ret = qcow2_pre_write_overlap_check(s, 0, tb_off, tb_size * 8);
    if (ret == 0) {
        ret = bd_child_co_pwrite(s->file, tb_off, tb_size * 8, tb, 0);
    }
    if (ret < 0) {
        qcow2_free_clusters(s, tb_off, tb_size * 8, false);
        for (uint64_t i = 0; i < tb_size; i++) {
            tb[i] = GUINT64_FROM_BE(tb[i]);
        }
        bd_error_setg(errp, "Failed to write bitmap '%s' to file: %s",
                      bm->name, g_strerror(-ret));
        goto fail;
    }
    bm->table_offset = tb_off;
    bm->table_size = tb_size;
    return 0;

fail:
    for (uint64_t i = 0; i < tb_size; i++) {
        if (tb[i]) {
            qcow2_free_clusters(s, tb[i], s->cluster_size, false);
        }
    }
    return ret;
}

/* QEMU's check_constraints_on_bitmap(). */
static bool bitmap_constraints(Qcow2State *s, const char *name,
                               uint32_t granularity, GError **errp)
{
    int gbits = __builtin_ctz(granularity);
    uint64_t bytes = bitmap_bytes_needed(s->size, gbits);

    if (gbits > BME_MAX_GRANULARITY_BITS) {
        bd_error_setg(errp, "Granularity exceeds maximum (%llu bytes)",
                      1ull << BME_MAX_GRANULARITY_BITS);
        return false;
    }
    if (gbits < BME_MIN_GRANULARITY_BITS) {
        bd_error_setg(errp, "Granularity is under minimum (%llu bytes)",
                      1ull << BME_MIN_GRANULARITY_BITS);
        return false;
    }
    if (bytes > BME_MAX_PHYS_SIZE ||
        bytes > (uint64_t)BME_MAX_TABLE_SIZE * s->cluster_size) {
        bd_error_setg(errp, "Too much space will be occupied by the bitmap. "
                      "Use larger granularity");
        return false;
    }
    if (strlen(name) > BME_MAX_NAME_SIZE) {
        bd_error_setg(errp, "Name length exceeds maximum (%u characters)",
                      BME_MAX_NAME_SIZE);
        return false;
    }
    return true;
}

static Qcow2Bitmap *find_in_list(GPtrArray *list, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];

        if (!strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

int qcow2_store_bitmaps(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) live = bd_node_get_dirty_bitmaps(s->node);
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GArray) drop = g_array_new(FALSE, FALSE,
                                         sizeof(Qcow2BitmapTable));
    g_autoptr(GArray) fresh = g_array_new(FALSE, FALSE,
                                          sizeof(Qcow2BitmapTable));
    uint64_t dir_size = 0;
    bool need_write = false;
    int ret;

    for (guint i = 0; i < live->len; i++) {
        if (bd_dirty_bitmap_persistent(live->pdata[i]) &&
            !bd_dirty_bitmap_readonly(live->pdata[i])) {
            need_write = true;
        }
    }
    if (!need_write) {
        return 0;
    }
    if (s->read_only) {
        bd_error_setg(errp, "No write access");
        return -EACCES;
    }
    if (s->nb_bitmaps && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        list = dir_load(s, errp);
        if (!list) {
            return -EINVAL;
        }
    } else {
        list = g_ptr_array_new_with_free_func(bitmap_free);
    }
    for (guint i = 0; i < list->len; i++) {
        dir_size += dir_entry_size(strlen(
            ((Qcow2Bitmap *)list->pdata[i])->name));
    }
    /* newest first, new ones appended: the order QEMU stores them in */
    for (guint i = 0; i < live->len; i++) {
        BdDirtyBitmap *bitmap = live->pdata[i];
        const char *name = bd_dirty_bitmap_name(bitmap);
        uint32_t granularity = bd_dirty_bitmap_granularity(bitmap);
        Qcow2Bitmap *bm;

        if (!bd_dirty_bitmap_persistent(bitmap) ||
            bd_dirty_bitmap_inconsistent(bitmap) ||
            bd_dirty_bitmap_readonly(bitmap)) {
            continue;
        }
        if (!bitmap_constraints(s, name, granularity, errp)) {
            g_prefix_error(errp, "Bitmap '%s' doesn't satisfy the "
                           "constraints: ", name);
            return -EINVAL;
        }
        bm = find_in_list(list, name);
        if (!bm) {
            if (list->len + 1 > QCOW2_MAX_BITMAPS) {
                bd_error_setg(errp, "Too many persistent bitmaps");
                return -EINVAL;
            }
            dir_size += dir_entry_size(strlen(name));
            if (dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
                bd_error_setg(errp, "Bitmap directory is too large");
                return -EINVAL;
            }
            bm = g_new0(Qcow2Bitmap, 1);
            bm->name = g_strdup(name);
            g_ptr_array_add(list, bm);
        } else {
            Qcow2BitmapTable t = { bm->table_offset, bm->table_size };

            if (!(bm->flags & BME_FLAG_IN_USE)) {
                bd_error_setg(errp, "Bitmap '%s' already exists in the "
                              "image", name);
                return -EINVAL;
            }
            g_array_append_val(drop, t);
            bm->table_offset = 0;
            bm->table_size = 0;
        }
        bm->flags = bd_dirty_bitmap_enabled(bitmap) ? BME_FLAG_AUTO : 0;
        bm->granularity_bits = __builtin_ctz(granularity);
        bm->bitmap = bitmap;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];
        Qcow2BitmapTable t;

        if (!bm->bitmap) {
            continue;
        }
        ret = store_data(s, bm, bm->bitmap, errp);
        if (ret < 0) {
            goto fail;
        }
        t.offset = bm->table_offset;
        t.size = bm->table_size;
        g_array_append_val(fresh, t);
    }
    ret = dir_replace(s, list);
    if (ret < 0) {
        bd_error_setg(errp, "Failed to update bitmap extension: %s",
                      g_strerror(-ret));
        goto fail;
    }
    /* the image no longer refers to the old tables */
    for (guint i = 0; i < drop->len; i++) {
        Qcow2BitmapTable *t = &g_array_index(drop, Qcow2BitmapTable, i);

        free_table(s, t->offset, t->size);
    }
    return 0;

fail:
    for (guint i = 0; i < fresh->len; i++) {
        Qcow2BitmapTable *t = &g_array_index(fresh, Qcow2BitmapTable, i);

        free_table(s, t->offset, t->size);
    }
    return ret;
}

/* --- the driver's callbacks (main loop) --- */

bool qcow2_can_store_new_dirty_bitmap(BdNode *node, const char *name,
                                      uint32_t granularity, GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);
    g_autoptr(GPtrArray) live = NULL;
    uint64_t dir_size = 0;
    uint32_t nb = 0;

    if (bd_dirty_bitmap_find(node, name)) {
        bd_error_setg(errp, "Bitmap already exists: %s", name);
        return false;
    }
    if (s->version < 3) {
        /* without autoclear bits the bitmaps could not be trusted */
        bd_error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        goto fail;
    }
    if (!bitmap_constraints(s, name, granularity, errp)) {
        goto fail;
    }
    live = bd_node_get_dirty_bitmaps(node);
    for (guint i = 0; i < live->len; i++) {
        if (bd_dirty_bitmap_persistent(live->pdata[i])) {
            nb++;
            dir_size += dir_entry_size(strlen(
                bd_dirty_bitmap_name(live->pdata[i])));
        }
    }
    nb++;
    dir_size += dir_entry_size(strlen(name));
    if (nb > QCOW2_MAX_BITMAPS) {
        bd_error_setg(errp, "Maximum number of persistent bitmaps is already "
                      "reached");
        goto fail;
    }
    if (dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        bd_error_setg(errp, "Not enough space in the bitmap directory");
        goto fail;
    }
    return true;

fail:
    g_prefix_error(errp, "Can't make bitmap '%s' persistent in '%s': ",
                   name, bd_node_get_name(node));
    return false;
}

typedef struct RemoveCo {
    Qcow2State *s;
    const char *name;
    GError **errp;
    int ret;
} RemoveCo;

static void remove_co(void *opaque)
{
    RemoveCo *r = opaque;
    Qcow2State *s = r->s;
    g_autoptr(GPtrArray) list = NULL;
    Qcow2Bitmap *bm;
    uint64_t off;
    uint32_t size;

    bd_co_mutex_lock(&s->meta_lock);
    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        /* not in the image (yet): nothing to remove */
        goto out;
    }
    list = dir_load(s, r->errp);
    if (!list) {
        r->ret = -EIO;
        goto out;
    }
    bm = find_in_list(list, r->name);
    if (!bm) {
        goto out;
    }
    off = bm->table_offset;
    size = bm->table_size;
    g_ptr_array_remove(list, bm);
    r->ret = dir_replace(s, list);
    if (r->ret < 0) {
        bd_error_setg(r->errp, "Failed to update bitmap extension: %s",
                      g_strerror(-r->ret));
        goto out;
    }
    free_table(s, off, size);
    r->ret = qcow2_write_caches(s);
out:
    bd_co_mutex_unlock(&s->meta_lock);
}

bool qcow2_remove_persistent_dirty_bitmap(BdNode *node, const char *name,
                                          GError **errp)
{
    RemoveCo r = { bd_node_get_opaque(node), name, errp, 0 };

    if (r.s->read_only) {
        return true;
    }
    bd_run_co(remove_co, &r);
    if (r.ret < 0 && errp && !*errp) {
        bd_error_setg(errp, "Failed to remove bitmap '%s': %s", name,
                      g_strerror(-r.ret));
    }
    return r.ret >= 0;
}

/* --- blockdev-reopen and resize --- */

int qcow2_reopen_bitmaps_ro(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) live = NULL;
    int ret = qcow2_store_bitmaps(s, errp);

    if (ret < 0) {
        return ret;
    }
    /* stored, flags not in use: the image is consistent read-only */
    live = bd_node_get_dirty_bitmaps(s->node);
    for (guint i = 0; i < live->len; i++) {
        if (bd_dirty_bitmap_persistent(live->pdata[i])) {
            bd_dirty_bitmap_set_readonly(live->pdata[i], true);
        }
    }
    return 0;
}

int qcow2_reopen_bitmaps_rw(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GPtrArray) ro = g_ptr_array_new();
    int ret;

    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        return 0;
    }
    list = dir_load(s, errp);
    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];
        BdDirtyBitmap *bitmap = bd_dirty_bitmap_find(s->node, bm->name);

        if (!bitmap) {
            continue;
        }
        if (!bd_dirty_bitmap_readonly(bitmap)) {
            bd_error_setg(errp, "Unexpected bitmap '%s' in image '%s': it "
                          "was not marked readonly", bm->name,
                          bd_node_get_name(s->node));
            return -EINVAL;
        }
        if (!(bm->flags & BME_FLAG_IN_USE)) {
            bm->flags |= BME_FLAG_IN_USE;
            g_ptr_array_add(ro, bitmap);
        }
    }
    if (ro->len) {
        ret = dir_update_in_place(s, list);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot update bitmap directory: %s",
                          g_strerror(-ret));
            return ret;
        }
        refresh_info(s);
        for (guint i = 0; i < ro->len; i++) {
            bd_dirty_bitmap_set_readonly(ro->pdata[i], false);
        }
    }
    return 0;
}

int qcow2_truncate_bitmaps_check(Qcow2State *s, GError **errp)
{
    g_autoptr(GPtrArray) list = NULL;

    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        return 0;
    }
    list = dir_load(s, errp);
    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2Bitmap *bm = list->pdata[i];
        BdDirtyBitmap *bitmap = bd_dirty_bitmap_find(s->node, bm->name);

        /* the tables on disk are resized only by storing the bitmaps */
        if (!bitmap) {
            bd_error_setg(errp, "Cannot resize qcow2 with persistent "
                          "bitmaps that were not loaded");
            return -ENOTSUP;
        }
        if (!bd_dirty_bitmap_check(bitmap, BD_DIRTY_BITMAP_CHECK_DEFAULT,
                                   errp)) {
            return -ENOTSUP;
        }
    }
    return 0;
}
