/*
 * block-qcow2: guest-to-host mapping through the L1 and L2 tables.
 *
 * Lookups take no lock: L1 entries and L2 entries are loaded atomically
 * and the L2 slice is pinned in the cache while it is read.  Changes run
 * under meta_lock; a new L2 table is on disk (after the refcounts that
 * make its cluster used) before the L1 entry that points to it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

uint64_t qcow2_l2_get(Qcow2State *s, uint64_t *slice, int i)
{
    uint64_t *p = &slice[s->extended_l2 ? 2 * i : i];

    return GUINT64_FROM_BE(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

uint64_t qcow2_l2_get_bitmap(Qcow2State *s, uint64_t *slice, int i)
{
    if (!s->extended_l2) {
        return 0;
    }
    return GUINT64_FROM_BE(__atomic_load_n(&slice[2 * i + 1],
                                           __ATOMIC_ACQUIRE));
}

/*
 * The entry first, then the bitmap: a reader that loads the bitmap
 * before the entry never sees a new bitmap with an old host offset.
 */
void qcow2_l2_set(Qcow2State *s, uint64_t *slice, int i, uint64_t entry,
                  uint64_t bitmap)
{
    if (s->extended_l2) {
        __atomic_store_n(&slice[2 * i], GUINT64_TO_BE(entry),
                         __ATOMIC_RELEASE);
        __atomic_store_n(&slice[2 * i + 1], GUINT64_TO_BE(bitmap),
                         __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&slice[i], GUINT64_TO_BE(entry), __ATOMIC_RELEASE);
    }
}

Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t entry,
                                  uint64_t bitmap, int sc)
{
    bool host = l2e_has_host(s, entry);

    if (entry & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_COMPRESSED;
    }
    if (s->extended_l2) {
        if ((bitmap >> (32 + sc)) & 1) {
            return host ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
        }
        if ((bitmap >> sc) & 1) {
            return QCOW2_NORMAL;
        }
        return host ? QCOW2_UNALLOCATED_ALLOC : QCOW2_UNALLOCATED;
    }
    if ((entry & QCOW_OFLAG_ZERO) && s->version >= 3) {
        return host ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
    }
    return host ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
}

/* The slice offset and entry index in it of guest @offset's L2 entry. */
static void slice_pos(Qcow2State *s, uint64_t l2_offset, int64_t offset,
                      int64_t *slice_off, int *index)
{
    int64_t l2_index = l2_index_of(s, offset);
    int64_t first = l2_index & ~(s->l2_slice_size - 1);

    *slice_off = l2_offset + first * s->l2_entry_size;
    *index = l2_index - first;
}

static bool check_l2_offset(Qcow2State *s, uint64_t l2_offset,
                            int64_t l1_index)
{
    if (offset_into_cluster(s, l2_offset)) {
        qcow2_signal_corruption(s, true, -1, -1,
                                "L2 table offset %#" G_GINT64_MODIFIER
                                "x unaligned (L1 index: %#"
                                G_GINT64_MODIFIER "x)", l2_offset,
                                l1_index);
        return false;
    }
    return true;
}

int qcow2_get_host_offset(Qcow2State *s, int64_t offset, int64_t bytes,
                          Qcow2ClusterType *type, uint64_t *host,
                          int64_t *pnum, bool *copied)
{
    int64_t l1_index = l1_index_of(s, offset);
    int64_t in_sc = offset & (s->subcluster_size - 1);
    int64_t slice_bytes = (s->l2_slice_size << s->cluster_bits);
    /* the range one slice maps, from @offset */
    int64_t max = slice_bytes - (offset & (slice_bytes - 1));
    uint64_t l2_offset, entry, bitmap, first_host = 0;
    int64_t slice_off, n;
    uint64_t *slice;
    int index, sc, ret;
    Qcow2ClusterType t;

    bytes = MIN(bytes, max);
    *copied = false;
    *host = 0;
    if (l1_index >= __atomic_load_n(&s->l1_size, __ATOMIC_ACQUIRE)) {
        *type = QCOW2_UNALLOCATED;
        *pnum = bytes;
        return 0;
    }
    l2_offset = __atomic_load_n(&__atomic_load_n(&s->l1_table,
                                                 __ATOMIC_ACQUIRE)[l1_index],
                                __ATOMIC_ACQUIRE) & L1E_OFFSET_MASK;
    if (!l2_offset) {
        *type = QCOW2_UNALLOCATED;
        *pnum = bytes;
        return 0;
    }
    if (!check_l2_offset(s, l2_offset, l1_index)) {
        return -EIO;
    }
    slice_pos(s, l2_offset, offset, &slice_off, &index);
    ret = qcow2_cache_get(s->l2_cache, slice_off, false, (void **)&slice);
    if (ret < 0) {
        return ret;
    }
    bitmap = qcow2_l2_get_bitmap(s, slice, index);
    entry = qcow2_l2_get(s, slice, index);
    sc = (offset >> s->subcluster_bits) & ((1 << (s->cluster_bits -
                                                  s->subcluster_bits)) - 1);
    t = qcow2_entry_type(s, entry, bitmap, sc);
    *type = t;
    *copied = entry & QCOW_OFLAG_COPIED;
    if (t == QCOW2_COMPRESSED) {
        *host = entry;
        n = s->cluster_size - offset_into_cluster(s, offset);
        qcow2_cache_put(s->l2_cache, slice);
        *pnum = MIN(n, bytes);
        return 0;
    }
    if (s->extended_l2 && (bitmap & (bitmap >> 32) & 0xffffffffu)) {
        qcow2_cache_put(s->l2_cache, slice);
        qcow2_signal_corruption(s, true, -1, -1, "Invalid cluster entry "
                                "found (L2 offset: %#" G_GINT64_MODIFIER
                                "x, L2 index: %#x)", l2_offset, index);
        return -EIO;
    }
    if (t == QCOW2_NORMAL || t == QCOW2_ZERO_ALLOC ||
        t == QCOW2_UNALLOCATED_ALLOC) {
        first_host = entry & L2E_OFFSET_MASK;
        if (offset_into_cluster(s, first_host)) {
            qcow2_cache_put(s->l2_cache, slice);
            qcow2_signal_corruption(s, true, -1, -1,
                                    "Cluster allocation offset %#"
                                    G_GINT64_MODIFIER "x unaligned (L2 "
                                    "offset: %#" G_GINT64_MODIFIER
                                    "x, L2 index: %#x)", first_host,
                                    l2_offset, index);
            return -EIO;
        }
        *host = first_host + offset_into_cluster(s, offset);
    }
    if (t == QCOW2_NORMAL && !has_data_file(s) &&
        (int64_t)first_host >= (1ll << 56)) {
        qcow2_cache_put(s->l2_cache, slice);
        return -EIO;
    }

    /* extend over the following subclusters and clusters of that kind */
    n = s->subcluster_size - in_sc;
    for (;;) {
        int64_t next = offset + n;
        int nindex = index + ((next >> s->cluster_bits) -
                              (offset >> s->cluster_bits));
        int nsc;
        uint64_t e, b;
        Qcow2ClusterType nt;

        if (n >= bytes || nindex >= s->l2_slice_size) {
            break;
        }
        b = qcow2_l2_get_bitmap(s, slice, nindex);
        e = qcow2_l2_get(s, slice, nindex);
        nsc = (next >> s->subcluster_bits) &
              ((1 << (s->cluster_bits - s->subcluster_bits)) - 1);
        nt = qcow2_entry_type(s, e, b, nsc);
        if (nt != t || ((bool)(e & QCOW_OFLAG_COPIED) != *copied &&
                        t == QCOW2_NORMAL)) {
            break;
        }
        if (t == QCOW2_NORMAL || t == QCOW2_ZERO_ALLOC ||
            t == QCOW2_UNALLOCATED_ALLOC) {
            uint64_t want = first_host + ((next >> s->cluster_bits) -
                                          (offset >> s->cluster_bits)) *
                                         s->cluster_size;

            if ((e & L2E_OFFSET_MASK) != want) {
                break;
            }
        }
        n += s->subcluster_size;
    }
    qcow2_cache_put(s->l2_cache, slice);
    *pnum = MIN(n, bytes);
    return 0;
}

int qcow2_get_l2_slice(Qcow2State *s, int64_t offset, uint64_t **slice,
                       int *index)
{
    int64_t l1_index = l1_index_of(s, offset);
    uint64_t l2_offset;
    int64_t slice_off;

    *slice = NULL;
    if (l1_index >= s->l1_size) {
        return 0;
    }
    l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    if (!l2_offset) {
        return 0;
    }
    if (!check_l2_offset(s, l2_offset, l1_index)) {
        return -EIO;
    }
    slice_pos(s, l2_offset, offset, &slice_off, index);
    return qcow2_cache_get(s->l2_cache, slice_off, false, (void **)slice);
}

/* Write the 512-byte block of the L1 table around entry @index. */
static int write_l1_entry(Qcow2State *s, int64_t index)
{
    int64_t first = index & ~63ll;
    int64_t n = MIN(64, (int64_t)s->l1_size - first);
    uint64_t buf[64];
    int ret;

    memset(buf, 0, sizeof(buf));
    for (int64_t i = 0; i < n; i++) {
        buf[i] = GUINT64_TO_BE(s->l1_table[first + i]);
    }
    ret = qcow2_pre_write_overlap_check(s, QCOW2_OL_ACTIVE_L1,
                                        s->l1_table_offset + first * 8,
                                        n * 8);
    if (ret < 0) {
        return ret;
    }
    return bd_child_co_pwrite(s->file, s->l1_table_offset + first * 8,
                              n * 8, buf, 0);
}

/*
 * A new L2 table for L1 entry @l1_index: empty, or a copy of the shared
 * table it replaces.
 */
static int l2_allocate(Qcow2State *s, int64_t l1_index)
{
    uint64_t old = s->l1_table[l1_index];
    uint64_t old_offset = old & L1E_OFFSET_MASK;
    int64_t l2_bytes = s->l2_size * s->l2_entry_size;
    int64_t new_offset;
    void *table;
    int ret;

    new_offset = qcow2_alloc_clusters(s, 1);
    if (new_offset < 0) {
        return new_offset;
    }
    table = bd_node_try_blockalign(s->node, s->cluster_size);
    if (!table) {
        return -ENOMEM;
    }
    memset(table, 0, s->cluster_size);
    if (old_offset) {
        ret = qcow2_child_pread(s->file, old_offset, l2_bytes, table);
        if (ret < 0) {
            goto out;
        }
    }
    /*
     * The refcount of the new table and the table itself on disk before
     * the L1 entry that points to it: both written, then one flush.
     */
    if (!s->use_lazy_refcounts) {
        ret = qcow2_cache_write(s->refcount_cache);
        if (ret < 0) {
            goto out;
        }
    }
    ret = qcow2_pre_write_overlap_check(s, 0, new_offset, s->cluster_size);
    if (ret < 0) {
        goto out;
    }
    ret = bd_child_co_pwrite(s->file, new_offset, s->cluster_size, table, 0);
    if (ret < 0) {
        goto out;
    }
    ret = bd_child_co_flush(s->file);
    if (ret < 0) {
        goto out;
    }
    __atomic_store_n(&s->l1_table[l1_index],
                     (uint64_t)new_offset | QCOW_OFLAG_COPIED,
                     __ATOMIC_RELEASE);
    ret = write_l1_entry(s, l1_index);
    if (ret < 0) {
        __atomic_store_n(&s->l1_table[l1_index], old, __ATOMIC_RELEASE);
        goto out;
    }
    if (old_offset) {
        /* the shared table keeps its other references */
        ret = qcow2_free_clusters(s, old_offset, s->cluster_size,
                                  s->discard_passthrough_other);
    }
out:
    free(table);
    return ret;
}

int qcow2_get_l2_slice_alloc(Qcow2State *s, int64_t offset,
                             uint64_t **slice, int *index)
{
    int64_t l1_index = l1_index_of(s, offset);
    int ret;

    if (l1_index >= s->l1_size) {
        return -EIO;
    }
    if (!(s->l1_table[l1_index] & QCOW_OFLAG_COPIED) ||
        !(s->l1_table[l1_index] & L1E_OFFSET_MASK)) {
        ret = l2_allocate(s, l1_index);
        if (ret < 0) {
            return ret;
        }
    }
    ret = qcow2_get_l2_slice(s, offset, slice, index);
    if (ret == 0 && !*slice) {
        ret = -EIO;
    }
    return ret;
}
