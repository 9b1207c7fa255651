/*
 * block-qcow2: write-zeroes and discard, both by changing L2 entries
 * instead of writing data.
 *
 * Order on disk: the L2 entries that drop a host cluster are written
 * (and flushed) before the cluster's refcount goes down, so that a crash
 * never leaves an L2 entry pointing at a cluster that may be handed out
 * again; at worst the cluster leaks.
 */
#include <errno.h>

#include "qcow2.h"

#define L2_BITMAP_ALL_ZEROES (0xffffffffull << 32)

typedef enum ZeroMode {
    ZERO_KEEP,      /* write-zeroes, host clusters kept */
    ZERO_UNMAP,     /* write-zeroes with MAY_UNMAP */
    DISCARD,        /* a guest discard */
    DISCARD_FULL,   /* shrinking: the clusters go away entirely */
} ZeroMode;

/*
 * meta_lock held: change the entries of one L2 slice for [@offset, +@bytes)
 * (whole clusters or, with extended L2, whole subclusters); the host
 * entries to free are appended to @to_free.  Returns the bytes handled,
 * or -errno (-ENOTSUP: cannot be done by metadata alone).
 */
static int64_t zero_in_slice(Qcow2State *s, int64_t offset, int64_t bytes,
                             ZeroMode mode, GArray *to_free)
{
    int sc_per = 1 << (s->cluster_bits - s->subcluster_bits);
    uint64_t *slice;
    int index, ret;
    int64_t done = 0;
    bool changed = false;

    if (mode == DISCARD || mode == DISCARD_FULL) {
        ret = qcow2_get_l2_slice(s, offset, &slice, &index);
        if (ret < 0) {
            return ret;
        }
        if (!slice) {
            /* no L2 table: nothing allocated in its range */
            int64_t l2_span = s->l2_size << s->cluster_bits;

            if (!bd_node_get_backing(s->node) || mode == DISCARD_FULL ||
                s->version < 3) {
                return MIN(bytes, l2_span - (offset & (l2_span - 1)));
            }
            ret = qcow2_get_l2_slice_alloc(s, offset, &slice, &index);
            if (ret < 0) {
                return ret;
            }
        }
    } else {
        ret = qcow2_get_l2_slice_alloc(s, offset, &slice, &index);
        if (ret < 0) {
            return ret;
        }
    }
    while (done < bytes && index < s->l2_slice_size) {
        int64_t coff = offset_into_cluster(s, offset + done);
        int64_t n = MIN(bytes - done, s->cluster_size - coff);
        uint64_t entry = qcow2_l2_get(s, slice, index);
        uint64_t bitmap = qcow2_l2_get_bitmap(s, slice, index);
        uint64_t new_entry = entry, new_bitmap = bitmap;
        bool whole = coff == 0 && (n == s->cluster_size ||
                                   offset + done + n >= s->size);
        bool has_host = l2e_has_host(s, entry) ||
                        (entry & QCOW_OFLAG_COMPRESSED);
        bool drop_host = false;

        if (!whole && !s->extended_l2) {
            break;
        }
        if (!whole) {
            int f0 = coff >> s->subcluster_bits;
            int f1 = ((coff + n) >> s->subcluster_bits) - 1;
            uint64_t bits = ((2ull << f1) - 1) & ~((1ull << f0) - 1);

            if (entry & QCOW_OFLAG_COMPRESSED) {
                /* subclusters of a compressed cluster: write zeroes */
                if (!done) {
                    qcow2_cache_put(s->l2_cache, slice);
                    return -ENOTSUP;
                }
                break;
            }
            if (mode == DISCARD || mode == DISCARD_FULL) {
                /* QEMU discards whole clusters only */
                done += n;
                index++;
                continue;
            }
            new_bitmap = (bitmap & ~bits) | (bits << 32);
        } else if (mode == DISCARD || mode == DISCARD_FULL) {
            Qcow2ClusterType t = qcow2_entry_type(s, entry, bitmap, 0);
            bool allocated = has_host || t == QCOW2_ZERO_PLAIN ||
                             (s->extended_l2 && bitmap);

            if (mode == DISCARD_FULL) {
                new_entry = new_bitmap = 0;
            } else if (s->version < 3 && bd_node_get_backing(s->node)) {
                /*
                 * v2 has no zero flag and an empty entry would show the
                 * backing file: QEMU leaves such clusters as they are
                 */
                done += n;
                index++;
                continue;
            } else if (bd_node_get_backing(s->node) || allocated) {
                if (s->extended_l2) {
                    new_entry = 0;
                    new_bitmap = L2_BITMAP_ALL_ZEROES;
                } else {
                    new_entry = s->version >= 3 ? QCOW_OFLAG_ZERO : 0;
                }
            }
            drop_host = has_host;
        } else {
            bool keep = mode == ZERO_KEEP && (entry & QCOW_OFLAG_COPIED) &&
                        l2e_has_host(s, entry) &&
                        !(entry & QCOW_OFLAG_COMPRESSED);

            if (keep) {
                new_entry = (entry & (L2E_OFFSET_MASK | QCOW_OFLAG_COPIED));
            } else {
                new_entry = 0;
                drop_host = has_host;
            }
            if (s->extended_l2) {
                new_bitmap = L2_BITMAP_ALL_ZEROES;
            } else {
                new_entry |= QCOW_OFLAG_ZERO;
            }
        }
        (void)sc_per;
        if (new_entry != entry || new_bitmap != bitmap) {
            qcow2_l2_set(s, slice, index, new_entry, new_bitmap);
            changed = true;
            if (drop_host) {
                g_array_append_val(to_free, entry);
            }
        }
        done += n;
        index++;
    }
    if (changed) {
        qcow2_cache_mark_dirty(s->l2_cache, slice);
    }
    qcow2_cache_put(s->l2_cache, slice);
    return done;
}

static bool inflight_overlaps(Qcow2State *s, int64_t start, int64_t end,
                              BdCoQueue **queue);

/* meta_lock held: zero or discard [@offset, +@bytes). */
static int zero_range_locked(Qcow2State *s, int64_t offset, int64_t bytes,
                             ZeroMode mode)
{
    g_autoptr(GArray) to_free = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int ret = 0;

    while (bytes > 0) {
        int64_t cstart = offset & ~(s->cluster_size - 1);
        int64_t cend = (offset + bytes + s->cluster_size - 1) &
                       ~(s->cluster_size - 1);
        BdCoQueue *q;
        int64_t n;

        if (inflight_overlaps(s, cstart, cend, &q)) {
            bd_co_queue_wait(q, &s->meta_lock);
            continue;
        }
        if (mode != DISCARD_FULL) {
            ret = qcow2_mark_dirty(s);
            if (ret < 0) {
                break;
            }
        }
        n = zero_in_slice(s, offset, bytes, mode, to_free);
        if (n < 0) {
            ret = n;
            break;
        }
        if (n == 0) {
            ret = -ENOTSUP;
            break;
        }
        offset += n;
        bytes -= n;
    }
    if (to_free->len) {
        int r = 0;

        /* the entries on disk before the clusters may be reused */
        if (!s->use_lazy_refcounts) {
            r = qcow2_cache_flush(s->l2_cache);
        }
        if (r == 0) {
            qcow2_wait_lockfree_idle(s);
            for (guint i = 0; i < to_free->len; i++) {
                uint64_t e = g_array_index(to_free, uint64_t, i);
                bool pass = mode == DISCARD || mode == DISCARD_FULL ?
                            s->discard_passthrough_request :
                            s->discard_passthrough_other;

                qcow2_free_l2_entry_discard(s, e, pass);
            }
        }
        if (ret == 0) {
            ret = r;
        }
    }
    return ret;
}

static bool inflight_overlaps(Qcow2State *s, int64_t start, int64_t end,
                              BdCoQueue **queue)
{
    return qcow2_find_inflight(s, start, end, queue);
}

int qcow2_zero_range(Qcow2State *s, int64_t offset, int64_t bytes,
                     bool discard, bool unmap, bool full)
{
    ZeroMode mode = full ? DISCARD_FULL : discard ? DISCARD :
                    unmap ? ZERO_UNMAP : ZERO_KEEP;
    int ret;

    bd_co_mutex_lock(&s->meta_lock);
    ret = zero_range_locked(s, offset, bytes, mode);
    bd_co_mutex_unlock(&s->meta_lock);
    return ret;
}

int qcow2_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                           BdRequestFlags flags)
{
    Qcow2State *s = bd_node_get_opaque(node);

    if (qcow2_unusable(s)) {
        return -ENOMEDIUM;
    }
    if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
        return -EIO;
    }
    /* v2 has no zero flag; a raw data file must hold the zeroes itself */
    if ((s->version < 3 && !s->extended_l2) || s->data_file_raw) {
        return -ENOTSUP;
    }
    if (offset_into_cluster(s, offset) & (s->subcluster_size - 1) ||
        ((offset + bytes) & (s->subcluster_size - 1) &&
         offset + bytes != s->size)) {
        return -ENOTSUP;
    }
    return qcow2_zero_range(s, offset, bytes, false,
                            flags & BD_REQ_MAY_UNMAP, false);
}

int qcow2_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    Qcow2State *s = bd_node_get_opaque(node);

    if (qcow2_unusable(s)) {
        return -ENOMEDIUM;
    }
    if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
        return -EIO;
    }
    if (offset_into_cluster(s, offset | bytes) &&
        (offset_into_cluster(s, offset) || offset + bytes != s->size)) {
        /* partial clusters are left alone, as QEMU does */
        return -ENOTSUP;
    }
    return qcow2_zero_range(s, offset, bytes, true, false, false);
}
