/*
 * block-qcow2: the repair of a dirty image, run when an image with the
 * dirty bit (left by lazy refcounts) is opened writable, as QEMU does.
 *
 * Every cluster the image uses is counted from the structures that
 * reference it (header, L1 and L2 tables of the active state and of the
 * snapshots, data clusters, refcount table and blocks, snapshot table,
 * bitmap directory and bitmap tables); each stored refcount that differs
 * is set to the count, and the COPIED flags of L1 and L2 entries are made
 * to match refcount 1.  Runs in a coroutine, with meta_lock held.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

typedef struct Counts {
    uint64_t *n;
    int64_t len;        /* clusters */
    /*
     * Clusters of the image file: a reference past them comes from a
     * corrupt table, and must not size the array (a crafted entry would
     * make it hundreds of GiB).
     */
    int64_t limit;
    bool out_of_range;
} Counts;

static void count(Qcow2State *s, Counts *c, int64_t offset, int64_t bytes)
{
    int64_t first, last;

    if (bytes <= 0) {
        return;
    }
    if (offset < 0 || offset > INT64_MAX - bytes) {
        c->out_of_range = true;
        return;
    }
    first = offset >> s->cluster_bits;
    last = (offset + bytes - 1) >> s->cluster_bits;
    if (last >= c->limit) {
        c->out_of_range = true;
        return;
    }
    if (last >= c->len) {
        int64_t len = MAX(last + 1, c->len * 2);

        c->n = g_renew(uint64_t, c->n, len);
        memset(c->n + c->len, 0, (len - c->len) * sizeof(uint64_t));
        c->len = len;
    }
    for (int64_t i = first; i <= last; i++) {
        c->n[i]++;
    }
}

/* The L2 table at @l2_offset: its data clusters. */
static int count_l2(Qcow2State *s, Counts *c, uint64_t l2_offset)
{
    int64_t bytes = s->l2_size * s->l2_entry_size;
    g_autofree uint64_t *t = g_malloc(bytes);
    int ret = qcow2_child_pread(s->file, l2_offset, bytes, t);

    if (ret < 0) {
        return ret;
    }
    for (int64_t i = 0; i < s->l2_size; i++) {
        uint64_t e = qcow2_l2_get(s, t, i);

        if (e & QCOW_OFLAG_COMPRESSED) {
            uint64_t coff = e & s->cluster_offset_mask;
            uint64_t nb = ((e >> s->csize_shift) & s->csize_mask) + 1;

            count(s, c, coff, nb * 512 - (coff & 511));
        } else if ((e & L2E_OFFSET_MASK) && !has_data_file(s)) {
            count(s, c, e & L2E_OFFSET_MASK, s->cluster_size);
        }
    }
    return 0;
}

/* An L1 table of @size entries at @offset: itself, its L2 tables. */
static int count_l1(Qcow2State *s, Counts *c, uint64_t offset,
                    uint32_t size, const uint64_t *table)
{
    g_autofree uint64_t *t = NULL;
    int ret;

    count(s, c, offset, (int64_t)size * 8);
    if (!table) {
        t = g_new(uint64_t, size);
        ret = qcow2_child_pread(s->file, offset, (int64_t)size * 8, t);
        if (ret < 0) {
            return ret;
        }
        for (uint32_t i = 0; i < size; i++) {
            t[i] = GUINT64_FROM_BE(t[i]);
        }
        table = t;
    }
    for (uint32_t i = 0; i < size; i++) {
        uint64_t l2 = table[i] & L1E_OFFSET_MASK;

        if (l2) {
            count(s, c, l2, s->cluster_size);
            ret = count_l2(s, c, l2);
            if (ret < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

/* The snapshot table and every snapshot's L1 table. */
static int count_snapshots(Qcow2State *s, Counts *c)
{
    int64_t off = s->snapshots_offset, start = off;

    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        uint8_t h[40];
        int ret = qcow2_child_pread(s->file, off, sizeof(h), h);
        uint32_t extra, id_len, name_len;

        if (ret < 0) {
            return ret;
        }
        id_len = h[12] << 8 | h[13];
        name_len = h[14] << 8 | h[15];
        extra = rd32(h + 36);
        ret = count_l1(s, c, rd64(h), rd32(h + 8), NULL);
        if (ret < 0) {
            return ret;
        }
        off += 40 + extra + id_len + name_len;
        off = (off + 7) & ~7ll;
    }
    count(s, c, start, off - start);
    return 0;
}

/* The bitmap directory and the bitmap tables with their data. */
static int count_bitmaps(Qcow2State *s, Counts *c)
{
    g_autofree uint8_t *dir = NULL;
    uint64_t pos = 0;
    int ret;

    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) ||
        s->bitmap_directory_size > (64u << 20)) {
        return 0;
    }
    dir = g_malloc(s->bitmap_directory_size);
    ret = qcow2_child_pread(s->file, s->bitmap_directory_offset,
                            s->bitmap_directory_size, dir);
    if (ret < 0) {
        return ret;
    }
    count(s, c, s->bitmap_directory_offset, s->bitmap_directory_size);
    for (uint32_t i = 0; i < s->nb_bitmaps &&
         pos + 24 <= s->bitmap_directory_size; i++) {
        const uint8_t *e = dir + pos;
        uint64_t toff = rd64(e);
        uint32_t tsize = rd32(e + 8);
        uint32_t name_len = e[18] << 8 | e[19];
        uint32_t extra = rd32(e + 20);
        g_autofree uint64_t *t = g_new(uint64_t, tsize ? tsize : 1);

        if (tsize) {
            ret = qcow2_child_pread(s->file, toff, (int64_t)tsize * 8, t);
            if (ret < 0) {
                return ret;
            }
            count(s, c, toff, (int64_t)tsize * 8);
            for (uint32_t j = 0; j < tsize; j++) {
                uint64_t d = GUINT64_FROM_BE(t[j]) & L2E_OFFSET_MASK;

                if (d) {
                    count(s, c, d, s->cluster_size);
                }
            }
        }
        pos += (24 + extra + name_len + 7) & ~7ull;
    }
    return 0;
}

/* The COPIED flags of the active tables, from the refcounts. */
static int fix_copied(Qcow2State *s)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
        uint64_t rc;
        int ret;

        if (!l2) {
            continue;
        }
        ret = qcow2_get_refcount(s, l2 >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if ((rc == 1) != !!(s->l1_table[i] & QCOW_OFLAG_COPIED)) {
            uint64_t be;

            s->l1_table[i] ^= QCOW_OFLAG_COPIED;
            be = GUINT64_TO_BE(s->l1_table[i]);
            ret = bd_child_co_pwrite(s->file, s->l1_table_offset + i * 8, 8,
                                     &be, 0);
            if (ret < 0) {
                return ret;
            }
        }
        for (int64_t j = 0; j < s->l2_size; j += s->l2_slice_size) {
            int64_t guest = (((int64_t)i << s->l2_bits) + j) << s->cluster_bits;
            uint64_t *slice;
            int index;
            bool dirty = false;

            ret = qcow2_get_l2_slice(s, guest, &slice, &index);
            if (ret < 0) {
                return ret;
            }
            for (int k = 0; slice && k < s->l2_slice_size; k++) {
                uint64_t e = qcow2_l2_get(s, slice, k);
                uint64_t host = e & L2E_OFFSET_MASK;

                if (!host || (e & QCOW_OFLAG_COMPRESSED)) {
                    continue;
                }
                rc = 1;
                if (!has_data_file(s)) {
                    ret = qcow2_get_refcount(s, host >> s->cluster_bits, &rc);
                    if (ret < 0) {
                        qcow2_cache_put(s->l2_cache, slice);
                        return ret;
                    }
                }
                if ((rc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
                    qcow2_l2_set(s, slice, k, e ^ QCOW_OFLAG_COPIED,
                                 qcow2_l2_get_bitmap(s, slice, k));
                    dirty = true;
                }
            }
            if (slice) {
                if (dirty) {
                    qcow2_cache_mark_dirty(s->l2_cache, slice);
                }
                qcow2_cache_put(s->l2_cache, slice);
            }
        }
    }
    return 0;
}

int qcow2_repair_dirty(Qcow2State *s, GError **errp)
{
    Counts c = { g_new0(uint64_t, 1024), 1024, 0, false };
    g_autofree uint64_t *orig_rt = g_memdup2(s->refcount_table,
                                             s->refcount_table_size * 8);
    uint32_t orig_rt_size = s->refcount_table_size;
    int64_t file_len = bd_child_co_getlength(s->file);
    int64_t rt_clusters;
    int ret;

    if (file_len < 0) {
        ret = (int)file_len;
        goto out;
    }
    /* the refcount blocks this repair may append fit in one more table */
    c.limit = (file_len >> s->cluster_bits) + 1;
    count(s, &c, 0, s->cluster_size);
    ret = count_l1(s, &c, s->l1_table_offset, s->l1_size, s->l1_table);
    if (ret == 0) {
        ret = count_snapshots(s, &c);
    }
    if (ret == 0) {
        ret = count_bitmaps(s, &c);
    }
    if (ret == 0 && c.out_of_range) {
        /* a table points past the end of the file: nothing to rebuild from */
        ret = -EIO;
    }
    if (ret < 0) {
        goto out;
    }
    count(s, &c, s->refcount_table_offset,
          (int64_t)s->refcount_table_clusters << s->cluster_bits);
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;

        if (rb) {
            count(s, &c, rb, s->cluster_size);
        }
    }
    if (c.out_of_range) {
        ret = -EIO;
        goto out;
    }
    /* every cluster the counts or the refcount blocks know of */
    rt_clusters = (int64_t)s->refcount_table_size << s->refcount_block_bits;
    for (int64_t i = 0; i < MAX(c.len, rt_clusters); i++) {
        uint64_t want = i < c.len ? c.n[i] : 0, have;

        if (i >= c.len && !(s->refcount_table[i >> s->refcount_block_bits] &
                            REFT_OFFSET_MASK)) {
            /* a whole block's range with no block and nothing used */
            i |= (1ll << s->refcount_block_bits) - 1;
            continue;
        }
        if (!(i & ((1ll << s->refcount_block_bits) - 1))) {
            uint64_t rt_i = i >> s->refcount_block_bits;
            uint64_t now = rt_i < s->refcount_table_size ?
                           s->refcount_table[rt_i] & REFT_OFFSET_MASK : 0;
            uint64_t then = rt_i < orig_rt_size ?
                            orig_rt[rt_i] & REFT_OFFSET_MASK : 0;

            /* a refcount block this repair created for itself */
            if (now != then && now == (uint64_t)i << s->cluster_bits) {
                want++;
            }
        }
        ret = qcow2_get_refcount(s, i, &have);
        if (ret < 0) {
            goto out;
        }
        if (want != have) {
            ret = qcow2_update_refcount(s, i << s->cluster_bits,
                                        s->cluster_size,
                                        (int64_t)(want - have));
            if (ret < 0) {
                goto out;
            }
        }
    }
    s->free_cluster_index = 0;
    ret = fix_copied(s);
    if (ret == 0) {
        ret = qcow2_write_caches(s);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        ret = qcow2_write_incompat(s, s->incompat & ~QCOW2_INCOMPAT_DIRTY);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
out:
    g_free(c.n);
    if (ret < 0) {
        bd_error_setg(errp, "Could not repair dirty image: %s", g_strerror(-ret));
        return ret;
    }
    return 0;
}
