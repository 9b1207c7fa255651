/*
 * block-qcow2: reference counts and cluster allocation.  Every function
 * here runs in a coroutine with meta_lock held.
 *
 * Order on disk, so that a crash leaves leaked clusters at most: a new
 * refcount block is written before the refcount table entry that points
 * to it; a new refcount table (with its own refcount block) before the
 * header that points to it, and the old one freed only after; refcount
 * increments (the refcount cache) before the L2 entries that use the
 * clusters (the L2 cache depends on the refcount cache).
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

static uint64_t rc_get(Qcow2State *s, const void *blk, uint64_t i)
{
    const uint8_t *b = blk;

    switch (s->refcount_order) {
    case 0:
        return (b[i / 8] >> (i % 8)) & 0x1;
    case 1:
        return (b[i / 4] >> (2 * (i % 4))) & 0x3;
    case 2:
        return (b[i / 2] >> (4 * (i % 2))) & 0xf;
    case 3:
        return b[i];
    case 4:
        return GUINT16_FROM_BE(((const uint16_t *)blk)[i]);
    case 5:
        return GUINT32_FROM_BE(((const uint32_t *)blk)[i]);
    default:
        return GUINT64_FROM_BE(((const uint64_t *)blk)[i]);
    }
}

static void rc_set(Qcow2State *s, void *blk, uint64_t i, uint64_t v)
{
    uint8_t *b = blk;
    int shift;

    switch (s->refcount_order) {
    case 0:
    case 1:
    case 2:
        shift = (i % (8 >> s->refcount_order)) << s->refcount_order;
        b += i / (8 >> s->refcount_order);
        *b = (*b & ~(s->refcount_max << shift)) | (v << shift);
        break;
    case 3:
        b[i] = v;
        break;
    case 4:
        ((uint16_t *)blk)[i] = GUINT16_TO_BE(v);
        break;
    case 5:
        ((uint32_t *)blk)[i] = GUINT32_TO_BE(v);
        break;
    default:
        ((uint64_t *)blk)[i] = GUINT64_TO_BE(v);
        break;
    }
}

int qcow2_get_refcount(Qcow2State *s, int64_t cluster_index,
                       uint64_t *refcount)
{
    uint64_t rt_index = cluster_index >> s->refcount_block_bits;
    uint64_t block_off;
    void *blk;
    int ret;

    *refcount = 0;
    if (rt_index >= s->refcount_table_size) {
        return 0;
    }
    block_off = s->refcount_table[rt_index] & REFT_OFFSET_MASK;
    if (!block_off) {
        return 0;
    }
    if (offset_into_cluster(s, block_off)) {
        qcow2_signal_corruption(s, true, -1, -1,
                                "Refblock offset %#" G_GINT64_MODIFIER
                                "x unaligned (reftable index: %#"
                                G_GINT64_MODIFIER "x)", block_off,
                                rt_index);
        return -EIO;
    }
    ret = qcow2_cache_get(s->refcount_cache, block_off, false, &blk);
    if (ret < 0) {
        return ret;
    }
    *refcount = rc_get(s, blk, cluster_index &
                       ((1ull << s->refcount_block_bits) - 1));
    qcow2_cache_put(s->refcount_cache, blk);
    return 0;
}

static int write_reftable_entry(Qcow2State *s, uint64_t rt_index)
{
    /* the 512-byte block around the entry, from the table in memory */
    uint64_t first = rt_index & ~63ull;
    uint64_t buf[64];
    uint64_t n = MIN(64, s->refcount_table_size - first);

    memset(buf, 0, sizeof(buf));
    for (uint64_t i = 0; i < n; i++) {
        buf[i] = GUINT64_TO_BE(s->refcount_table[first + i]);
    }
    return bd_child_co_pwrite(s->file, s->refcount_table_offset + first * 8,
                              n * 8, buf, 0);
}

/*
 * A bigger refcount table, in a fresh area just past what the current
 * one covers: first the new refcount blocks describing the area (as many
 * as the area needs to hold them and the table), then the new table,
 * which includes them.  The header switches to it in one write after
 * both are on disk; the old table is freed after.
 */
static int grow_reftable(Qcow2State *s, uint64_t needed_index)
{
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t per_block = 1ull << s->refcount_block_bits;
    uint64_t area_index = s->refcount_table_size;
    uint64_t new_size, new_clusters, nblocks;
    int64_t area = (int64_t)(area_index << s->refcount_block_bits)
                   << s->cluster_bits;
    int64_t table_off;
    int64_t old_offset = s->refcount_table_offset;
    uint32_t old_clusters = s->refcount_table_clusters;
    uint64_t *new_table;
    uint8_t hdr[12];
    int ret;

    new_size = MAX(needed_index + 1, (uint64_t)s->refcount_table_size * 2);
    for (;;) {
        new_clusters = (new_size + per_cluster - 1) / per_cluster;
        /* blocks enough to count themselves and the table */
        nblocks = (new_clusters + per_block - 2) / (per_block - 1);
        if (new_size >= area_index + nblocks) {
            break;
        }
        new_size = area_index + nblocks;
    }
    new_size = new_clusters * per_cluster;
    if (new_clusters > (QCOW_MAX_REFTABLE_SIZE >> s->cluster_bits)) {
        return -EFBIG;
    }
    /*
     * Block b sits at cluster b of the area and describes range
     * area_index + b: area clusters [b * per_block, (b + 1) * per_block),
     * which hold the blocks first, then the table.
     */
    for (uint64_t b = 0; b < nblocks; b++) {
        uint64_t first = b * per_block;
        uint64_t last = MIN(first + per_block, nblocks + new_clusters);
        void *blk;

        ret = qcow2_cache_get(s->refcount_cache,
                              area + ((int64_t)b << s->cluster_bits), true,
                              &blk);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t c = first; c < last; c++) {
            rc_set(s, blk, c - first, 1);
        }
        qcow2_cache_mark_dirty(s->refcount_cache, blk);
        qcow2_cache_put(s->refcount_cache, blk);
    }
    ret = qcow2_cache_flush(s->refcount_cache);
    if (ret < 0) {
        return ret;
    }

    new_table = g_malloc0(new_clusters * s->cluster_size);
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        new_table[i] = GUINT64_TO_BE(s->refcount_table[i]);
    }
    for (uint64_t b = 0; b < nblocks; b++) {
        new_table[area_index + b] =
            GUINT64_TO_BE((uint64_t)(area + ((int64_t)b << s->cluster_bits)));
    }
    table_off = area + ((int64_t)nblocks << s->cluster_bits);
    ret = bd_child_co_pwrite(s->file, table_off,
                             new_clusters * s->cluster_size, new_table, 0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        g_free(new_table);
        return ret;
    }
    *(uint64_t *)hdr = GUINT64_TO_BE((uint64_t)table_off);
    *(uint32_t *)(hdr + 8) = GUINT32_TO_BE((uint32_t)new_clusters);
    ret = bd_child_co_pwrite(s->file, HDR_REFTABLE_OFFSET, sizeof(hdr), hdr,
                             0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        g_free(new_table);
        return ret;
    }
    for (uint64_t i = 0; i < new_size; i++) {
        new_table[i] = GUINT64_FROM_BE(new_table[i]);
    }
    g_free(s->refcount_table);
    s->refcount_table = new_table;
    s->refcount_table_size = new_size;
    s->refcount_table_offset = table_off;
    s->refcount_table_clusters = new_clusters;
    s->refcount_table_used = area_index + nblocks;
    return qcow2_free_clusters(s, old_offset,
                               (int64_t)old_clusters << s->cluster_bits,
                               s->discard_passthrough_other);
}

/*
 * Make sure the refcount block for @rt_index exists.  A new one goes to
 * the first cluster of the range it describes (free, since the range had
 * no block) and counts itself.
 */
static int ensure_refblock(Qcow2State *s, uint64_t rt_index)
{
    int64_t block_off;
    void *blk;
    int ret;

    if (rt_index >= s->refcount_table_size) {
        ret = grow_reftable(s, rt_index);
        if (ret < 0) {
            return ret;
        }
    }
    if (s->refcount_table[rt_index] & REFT_OFFSET_MASK) {
        return 0;
    }
    block_off = (int64_t)(rt_index << s->refcount_block_bits)
                << s->cluster_bits;
    ret = qcow2_pre_write_overlap_check(s, 0, block_off, s->cluster_size);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_get(s->refcount_cache, block_off, true, &blk);
    if (ret < 0) {
        return ret;
    }
    rc_set(s, blk, 0, 1);
    qcow2_cache_mark_dirty(s->refcount_cache, blk);
    qcow2_cache_put(s->refcount_cache, blk);
    /* the block on disk before the table entry that points to it */
    ret = qcow2_cache_flush(s->refcount_cache);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table[rt_index] = block_off;
    s->refcount_table_used = MAX(s->refcount_table_used, rt_index + 1);
    ret = write_reftable_entry(s, rt_index);
    if (ret < 0) {
        s->refcount_table[rt_index] = 0;
    }
    return ret;
}

int qcow2_update_refcount(Qcow2State *s, int64_t offset, int64_t length,
                          int64_t addend)
{
    int64_t first = offset >> s->cluster_bits;
    int64_t last = (offset + length - 1) >> s->cluster_bits;
    uint64_t block_mask = (1ull << s->refcount_block_bits) - 1;

    if (length <= 0) {
        return 0;
    }
    for (int64_t c = first; c <= last;) {
        uint64_t rt_index = c >> s->refcount_block_bits;
        int64_t block_off;
        void *blk;
        int ret;

        if (addend > 0) {
            ret = ensure_refblock(s, rt_index);
            if (ret < 0) {
                return ret;
            }
        }
        block_off = rt_index < s->refcount_table_size ?
                    (int64_t)(s->refcount_table[rt_index] &
                              REFT_OFFSET_MASK) : 0;
        if (!block_off) {
            qcow2_signal_corruption(s, true, c << s->cluster_bits,
                                    s->cluster_size,
                                    "Freeing a cluster with no refcount "
                                    "block");
            return -EIO;
        }
        ret = qcow2_cache_get(s->refcount_cache, block_off, false, &blk);
        if (ret < 0) {
            return ret;
        }
        for (; c <= last && (uint64_t)c >> s->refcount_block_bits ==
                            rt_index; c++) {
            uint64_t i = c & block_mask;
            uint64_t rc = rc_get(s, blk, i);

            if ((addend < 0 && rc < (uint64_t)-addend) ||
                (addend > 0 && s->refcount_max - rc < (uint64_t)addend)) {
                qcow2_cache_put(s->refcount_cache, blk);
                return addend < 0 ? -EINVAL : -ERANGE;
            }
            rc += addend;
            rc_set(s, blk, i, rc);
            if (rc == 0 && c < s->free_cluster_index) {
                s->free_cluster_index = c;
            }
        }
        qcow2_cache_mark_dirty(s->refcount_cache, blk);
        qcow2_cache_put(s->refcount_cache, blk);
    }
    return 0;
}

/* The highest cluster offset an L2 entry can hold (QEMU's). */
#define QCOW_MAX_CLUSTER_OFFSET ((1ull << 56) - 1)

/*
 * QEMU's alloc_clusters_noref(): the first @n free clusters in a row
 * from free_cluster_index on (a cluster no refcount block counts is
 * free), not taken yet; free_cluster_index moves past them.  Free
 * clusters of a run too short are passed over, as QEMU passes them:
 * they are found again once something below them is freed.
 */
static int64_t find_free(Qcow2State *s, int64_t n)
{
    int64_t i = 0;

    while (i < n) {
        int64_t c = s->free_cluster_index++;
        uint64_t rc;
        int ret = qcow2_get_refcount(s, c, &rc);

        if (ret < 0) {
            return ret;
        }
        i = rc ? 0 : i + 1;
    }
    if ((uint64_t)(s->free_cluster_index - 1) >
        (QCOW_MAX_CLUSTER_OFFSET >> s->cluster_bits)) {
        return -EFBIG;
    }
    return (s->free_cluster_index - n) << s->cluster_bits;
}

static bool has_refblock(Qcow2State *s, uint64_t rt_index)
{
    return rt_index < s->refcount_table_size &&
           (s->refcount_table[rt_index] & REFT_OFFSET_MASK);
}

/*
 * A refcount block for the range of cluster @cluster where QEMU's
 * alloc_refcount_block() puts it: the first free cluster from
 * free_cluster_index on (past the run being allocated).  In the range it
 * counts it counts itself; otherwise its own range's block counts it,
 * and when that block is missing too, that one is made instead and this
 * one not (the cluster found first stays free, as in QEMU, which
 * searches again).  The block reaches the disk before the table entry
 * that points to it; past the end of the table, a new table takes it.
 * The caller searches its run again (QEMU's -EAGAIN), from where it
 * started.
 */
static int place_refblock(Qcow2State *s, int64_t cluster)
{
    uint64_t per_block = 1ull << s->refcount_block_bits;
    uint64_t rt_index = (uint64_t)cluster >> s->refcount_block_bits;
    int64_t block_off;
    uint64_t own;
    void *blk;
    int ret;

    block_off = find_free(s, 1);
    if (block_off < 0) {
        return block_off;
    }
    if (block_off == 0) {
        qcow2_signal_corruption(s, true, -1, -1, "Preventing invalid "
                                "allocation of refcount block at offset 0");
        return -EIO;
    }
    own = (uint64_t)(block_off >> s->cluster_bits) >> s->refcount_block_bits;
    if (own != rt_index) {
        if (!has_refblock(s, own)) {
            ret = place_refblock(s, block_off >> s->cluster_bits);
            if (ret == 0) {
                /* QEMU's update_refcount() of the block, searching again */
                s->free_cluster_index = MIN(s->free_cluster_index,
                                            block_off >> s->cluster_bits);
            }
            return ret;
        }
        ret = qcow2_update_refcount(s, block_off, s->cluster_size, 1);
        if (ret == 0) {
            ret = qcow2_cache_flush(s->refcount_cache);
        }
        if (ret < 0) {
            return ret;
        }
    }
    ret = qcow2_pre_write_overlap_check(s, 0, block_off, s->cluster_size);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_get(s->refcount_cache, block_off, true, &blk);
    if (ret < 0) {
        return ret;
    }
    if (own == rt_index) {
        rc_set(s, blk, (block_off >> s->cluster_bits) & (per_block - 1), 1);
    }
    qcow2_cache_mark_dirty(s->refcount_cache, blk);
    qcow2_cache_put(s->refcount_cache, blk);
    ret = qcow2_cache_flush(s->refcount_cache);
    if (ret < 0) {
        return ret;
    }
    if (rt_index >= s->refcount_table_size) {
        /*
         * The table is too small: a new one, with room to grow, after
         * new blocks that count it, past every range used so far
         * (QEMU's refcount_area from alloc_refcount_block())
         */
        uint64_t used = MAX((uint64_t)cluster + 1,
                            (uint64_t)(block_off >> s->cluster_bits) + 1);
        uint64_t blocks_used = (used + per_block - 1) / per_block;
        int64_t area = qcow2_refcount_area(s, (int64_t)(blocks_used *
                                               per_block) << s->cluster_bits,
                                           0, false, rt_index, block_off);

        return area < 0 ? area : 0;
    }
    s->refcount_table[rt_index] = block_off;
    s->refcount_table_used = MAX(s->refcount_table_used, rt_index + 1);
    ret = write_reftable_entry(s, rt_index);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        s->refcount_table[rt_index] = 0;
    }
    return ret;
}

/*
 * @n clusters in a row, taken, as QEMU's qcow2_alloc_clusters() finds
 * them (so that images come out laid out as QEMU lays them out): the
 * first free run from free_cluster_index on; where the run reaches a
 * range without a refcount block, the block is made (place_refblock())
 * and the search starts again from the run's start.
 */
static int64_t alloc_run(Qcow2State *s, int64_t n)
{
    int64_t off;
    int ret;

    for (;;) {
        uint64_t first, last, missing = UINT64_MAX;
        int64_t start;

        off = find_free(s, n);
        if (off < 0) {
            return off;
        }
        start = off >> s->cluster_bits;
        first = (uint64_t)start >> s->refcount_block_bits;
        last = (uint64_t)(start + n - 1) >> s->refcount_block_bits;
        for (uint64_t r = first; r <= last; r++) {
            if (!has_refblock(s, r)) {
                missing = r;
                break;
            }
        }
        if (missing == UINT64_MAX) {
            break;
        }
        ret = place_refblock(s, MAX(start, (int64_t)(missing <<
                                            s->refcount_block_bits)));
        if (ret < 0) {
            return ret;
        }
        s->free_cluster_index = MIN(s->free_cluster_index, start);
    }
    ret = qcow2_update_refcount(s, off, n << s->cluster_bits, 1);
    return ret < 0 ? ret : off;
}

int64_t qcow2_alloc_clusters(Qcow2State *s, int64_t n)
{
    return alloc_run(s, n);
}

int64_t qcow2_alloc_clusters_upto(Qcow2State *s, int64_t n, int64_t *got)
{
    /* QEMU allocates data clusters in one run of the length asked */
    int64_t off = alloc_run(s, n);

    *got = off < 0 ? 0 : n;
    return off;
}

int qcow2_free_clusters(Qcow2State *s, int64_t offset, int64_t length,
                        bool pass_discard)
{
    int64_t start = offset & ~(s->cluster_size - 1);
    int64_t end = ((offset + length + s->cluster_size - 1) &
                   ~(s->cluster_size - 1));
    int ret = qcow2_update_refcount(s, offset, length, -1);

    if (ret < 0) {
        return ret;
    }
    for (int64_t o = start; o < end; o += s->cluster_size) {
        uint64_t rc;

        if (qcow2_get_refcount(s, o >> s->cluster_bits, &rc) == 0 &&
            rc == 0) {
            /* a freed table must not be written back over new data */
            for (int64_t sl = 0; sl < s->cluster_size;
                 sl += s->l2_slice_size * s->l2_entry_size) {
                qcow2_cache_discard(s->l2_cache, o + sl);
            }
            qcow2_cache_discard(s->refcount_cache, o);
            if (pass_discard) {
                bd_child_co_pdiscard(s->file, o, s->cluster_size);
            }
        }
    }
    return 0;
}

int qcow2_free_l2_entry(Qcow2State *s, uint64_t entry)
{
    return qcow2_free_l2_entry_discard(s, entry,
                                       s->discard_passthrough_other);
}

int qcow2_free_l2_entry_discard(Qcow2State *s, uint64_t entry, bool pass)
{
    if (entry & QCOW_OFLAG_COMPRESSED) {
        uint64_t coff = entry & s->cluster_offset_mask;
        uint64_t nb = ((entry >> s->csize_shift) & s->csize_mask) + 1;
        int64_t len = nb * 512 - (coff & 511);

        return qcow2_free_clusters(s, coff, len, pass);
    }
    if (entry & L2E_OFFSET_MASK) {
        if (has_data_file(s)) {
            /* data file clusters are not refcounted */
            return 0;
        }
        return qcow2_free_clusters(s, entry & L2E_OFFSET_MASK,
                                   s->cluster_size, pass);
    }
    return 0;
}

/*
 * How many refcount blocks count @clusters clusters plus the refcount
 * blocks and table themselves: QEMU's fixed point
 * (qcow2_refcount_metadata_size()).
 */
static uint64_t refblocks_for(Qcow2State *s, uint64_t clusters,
                              bool generous)
{
    uint64_t per_table_cluster = s->cluster_size / 8;
    uint64_t per_block = 1ull << s->refcount_block_bits;
    uint64_t table = 0, blocks = 0, n = 0, last;

    do {
        last = n;
        blocks = (clusters + table + blocks + per_block - 1) / per_block;
        table = (blocks + per_table_cluster - 1) / per_table_cluster;
        n = clusters + blocks + table;
        if (n == last && generous) {
            /* room to grow: half the table's clusters more */
            clusters += (table + 1) / 2;
            n = 0;
            generous = false;
        }
    } while (n != last);
    return blocks;
}

int64_t qcow2_refcount_area(Qcow2State *s, int64_t start_offset,
                            uint64_t additional_clusters, bool exact_size,
                            uint64_t new_refblock_index,
                            int64_t new_refblock_offset)
{
    int64_t cs = s->cluster_size;
    uint64_t per_block = 1ull << s->refcount_block_bits;
    uint64_t total = refblocks_for(s, (start_offset >> s->cluster_bits) +
                                   additional_clusters, !exact_size);
    uint64_t area_index, table_size, table_clusters, added = 0, copy;
    int64_t table_offset, end_offset, block_offset;
    int64_t old_offset = s->refcount_table_offset;
    int64_t old_bytes = (int64_t)s->refcount_table_size * 8;
    g_autofree uint64_t *table = NULL;
    g_autofree uint64_t *be = NULL;
    uint8_t hdr[12];
    int ret;

    g_assert(!offset_into_cluster(s, start_offset));
    if (total > QCOW_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }
    area_index = (start_offset >> s->cluster_bits) >> s->refcount_block_bits;
    table_size = exact_size ? total : total + (total + 1) / 2;
    table_size = (table_size + cs / 8 - 1) / (cs / 8) * (cs / 8);
    table_clusters = table_size * 8 / cs;
    if (table_size > QCOW_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }
    table = g_new0(uint64_t, table_size);
    /* past the used part only empty space follows (the caller's word) */
    copy = MIN(table_size, MAX(s->refcount_table_used, 1));
    copy = MIN(copy, s->refcount_table_size);
    memcpy(table, s->refcount_table, copy * 8);
    if (new_refblock_offset) {
        g_assert(new_refblock_index < total);
        table[new_refblock_index] = new_refblock_offset;
    }
    for (uint64_t i = area_index; i < total; i++) {
        if (!(table[i] & REFT_OFFSET_MASK)) {
            added++;
        }
    }
    table_offset = start_offset + (int64_t)added * cs;
    end_offset = table_offset + (int64_t)table_clusters * cs;

    /* the blocks first (new ones from @start_offset on), counting the area */
    block_offset = start_offset;
    for (uint64_t i = area_index; i < total; i++) {
        uint64_t first_covered = i * per_block * cs;
        void *blk;

        if (table[i] & REFT_OFFSET_MASK) {
            ret = qcow2_cache_get(s->refcount_cache,
                                  table[i] & REFT_OFFSET_MASK, false, &blk);
        } else {
            ret = qcow2_cache_get(s->refcount_cache, block_offset, true,
                                  &blk);
            table[i] = block_offset;
            block_offset += cs;
        }
        if (ret < 0) {
            return ret;
        }
        if (first_covered < (uint64_t)end_offset) {
            uint64_t j = first_covered < (uint64_t)start_offset ?
                         (start_offset - first_covered) / cs : 0;
            uint64_t end_index = MIN((end_offset - first_covered) / cs,
                                     per_block);

            for (; j < end_index; j++) {
                rc_set(s, blk, j, 1);
            }
        }
        qcow2_cache_mark_dirty(s->refcount_cache, blk);
        qcow2_cache_put(s->refcount_cache, blk);
    }
    g_assert(block_offset == table_offset);
    ret = qcow2_cache_flush(s->refcount_cache);
    if (ret < 0) {
        return ret;
    }

    /* then the table, then the header that points to it */
    be = g_new0(uint64_t, table_size);
    for (uint64_t i = 0; i < table_size; i++) {
        be[i] = GUINT64_TO_BE(table[i]);
    }
    ret = bd_child_co_pwrite(s->file, table_offset, table_size * 8, be, 0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    *(uint64_t *)hdr = GUINT64_TO_BE((uint64_t)table_offset);
    *(uint32_t *)(hdr + 8) = GUINT32_TO_BE((uint32_t)table_clusters);
    ret = bd_child_co_pwrite(s->file, HDR_REFTABLE_OFFSET, sizeof(hdr), hdr,
                             0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&table);
    s->refcount_table_size = table_size;
    s->refcount_table_offset = table_offset;
    s->refcount_table_clusters = table_clusters;
    s->refcount_table_used = 0;
    for (uint64_t i = table_size; i > 0; i--) {
        if (s->refcount_table[i - 1] & REFT_OFFSET_MASK) {
            s->refcount_table_used = i;
            break;
        }
    }
    ret = qcow2_free_clusters(s, old_offset, old_bytes,
                              s->discard_passthrough_other);
    return ret < 0 ? ret : end_offset;
}
