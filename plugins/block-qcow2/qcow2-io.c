/*
 * block-qcow2: guest reads and writes, block status, flush, and the
 * safety nets around them (overlap checks, the corrupt bit, the dirty
 * bit of lazy refcounts).
 *
 * A write to clusters this image owns (QCOW_OFLAG_COPIED) goes straight
 * to the host offset without a lock.  A write that needs new clusters
 * runs in three steps: under meta_lock it takes the host clusters
 * (refcounts) and registers the guest range as in flight; without the
 * lock it writes the guest data and the copy-on-write parts around it;
 * under meta_lock again it points the L2 entries at the new clusters.
 * Readers meanwhile see the old mapping, and a second write to the same
 * guest clusters waits for the first.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

struct Qcow2InFlight {
    int64_t start;          /* guest bytes, cluster aligned */
    int64_t end;
    BdCoQueue waiters;
    Qcow2InFlight *next;
};

/* --- corruption, overlap checks --- */

void qcow2_signal_corruption(Qcow2State *s, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    /* a read-only image cannot be marked: report, keep serving */
    fatal = fatal && !s->read_only;
    if (s->signaled_corruption &&
        (!fatal || (s->incompat & QCOW2_INCOMPAT_CORRUPT))) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (fatal) {
        g_printerr("qcow2: Marking image as corrupt: %s; further "
                   "corruption events will be suppressed\n", msg);
    } else {
        g_printerr("qcow2: Image is corrupt: %s; further non-fatal "
                   "corruption events will be suppressed\n", msg);
    }
    bd_node_report_corruption(s->node, msg, offset, size, fatal);
    s->signaled_corruption = true;
    if (fatal) {
        /* the bit on disk, so that nobody opens the image writable again */
        if (bd_in_coroutine()) {
            qcow2_write_incompat(s, s->incompat | QCOW2_INCOMPAT_CORRUPT);
            bd_child_co_flush(s->file);
        }
        s->incompat |= QCOW2_INCOMPAT_CORRUPT;
        /* as QEMU takes the driver away: the node serves nothing more */
        __atomic_store_n(&s->unusable, true, __ATOMIC_RELEASE);
    }
}

static bool ranges_overlap(int64_t a, int64_t alen, int64_t b, int64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Which guarded structure [offset, +size) touches, 0 if none. */
static int overlap_check(Qcow2State *s, int ign, int64_t offset,
                         int64_t size)
{
    int chk = s->overlap_check & ~ign;
    int64_t cs = s->cluster_size;

    if (!size || !chk) {
        return 0;
    }
    if ((chk & QCOW2_OL_MAIN_HEADER) && offset < cs) {
        return QCOW2_OL_MAIN_HEADER;
    }
    if ((chk & QCOW2_OL_ACTIVE_L1) && s->l1_size &&
        ranges_overlap(offset, size, s->l1_table_offset,
                       (int64_t)s->l1_size * 8)) {
        return QCOW2_OL_ACTIVE_L1;
    }
    if ((chk & QCOW2_OL_REFCOUNT_TABLE) &&
        ranges_overlap(offset, size, s->refcount_table_offset,
                       (int64_t)s->refcount_table_clusters * cs)) {
        return QCOW2_OL_REFCOUNT_TABLE;
    }
    if ((chk & QCOW2_OL_SNAPSHOT_TABLE) && s->nb_snapshots &&
        ranges_overlap(offset, size, s->snapshots_offset,
                       (int64_t)s->nb_snapshots * 40)) {
        return QCOW2_OL_SNAPSHOT_TABLE;
    }
    if ((chk & QCOW2_OL_BITMAP_DIRECTORY) && s->bitmap_directory_size &&
        (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
        ranges_overlap(offset, size, s->bitmap_directory_offset,
                       s->bitmap_directory_size)) {
        return QCOW2_OL_BITMAP_DIRECTORY;
    }
    for (guint i = 0; s->snapshot_l1 && i < s->snapshot_l1->len; i++) {
        Qcow2SnapshotL1 *sn = &g_array_index(s->snapshot_l1,
                                             Qcow2SnapshotL1, i);

        if ((chk & QCOW2_OL_INACTIVE_L1) && sn->size &&
            ranges_overlap(offset, size, sn->offset, sn->size * 8ll)) {
            return QCOW2_OL_INACTIVE_L1;
        }
        for (uint32_t j = 0; (chk & QCOW2_OL_INACTIVE_L2) && sn->l2 &&
             j < sn->size; j++) {
            if (sn->l2[j] && ranges_overlap(offset, size, sn->l2[j], cs)) {
                return QCOW2_OL_INACTIVE_L2;
            }
        }
    }
    if (chk & QCOW2_OL_ACTIVE_L2) {
        for (uint32_t i = 0; i < s->l1_size; i++) {
            uint64_t l2 = __atomic_load_n(&s->l1_table[i], __ATOMIC_RELAXED) &
                          L1E_OFFSET_MASK;

            if (l2 && ranges_overlap(offset, size, l2, cs)) {
                return QCOW2_OL_ACTIVE_L2;
            }
        }
    }
    if (chk & QCOW2_OL_REFCOUNT_BLOCK) {
        /* the used part only: the table is mostly empty on most images */
        for (uint32_t i = 0; i < s->refcount_table_used; i++) {
            uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;

            if (rb && ranges_overlap(offset, size, rb, cs)) {
                return QCOW2_OL_REFCOUNT_BLOCK;
            }
        }
    }
    return 0;
}

static const char *metadata_ol_name(int ol)
{
    switch (ol) {
    case QCOW2_OL_MAIN_HEADER:
        return "qcow2_header";
    case QCOW2_OL_ACTIVE_L1:
        return "active L1 table";
    case QCOW2_OL_ACTIVE_L2:
        return "active L2 table";
    case QCOW2_OL_REFCOUNT_TABLE:
        return "refcount table";
    case QCOW2_OL_REFCOUNT_BLOCK:
        return "refcount block";
    case QCOW2_OL_SNAPSHOT_TABLE:
        return "snapshot table";
    case QCOW2_OL_INACTIVE_L1:
        return "inactive L1 table";
    case QCOW2_OL_INACTIVE_L2:
        return "inactive L2 table";
    default:
        return "bitmap directory";
    }
}

int qcow2_pre_write_overlap_check(Qcow2State *s, int ign, int64_t offset,
                                  int64_t size)
{
    int ol;

    if (has_data_file(s) && ign == -1) {
        return 0;
    }
    ol = overlap_check(s, ign == -1 ? 0 : ign, offset, size);
    if (!ol) {
        return 0;
    }
    qcow2_signal_corruption(s, true, offset, size, "Preventing invalid "
                            "write on "
                            "metadata (overlaps with %s)",
                            metadata_ol_name(ol));
    return -EIO;
}

/* A data write: with a separate data file it cannot hit metadata. */
static int data_overlap_check(Qcow2State *s, int64_t host, int64_t size)
{
    if (has_data_file(s)) {
        return 0;
    }
    return qcow2_pre_write_overlap_check(s, 0, host, size);
}

/* --- dirty bit --- */

int qcow2_mark_dirty(Qcow2State *s)
{
    int ret;

    if (!s->use_lazy_refcounts) {
        /* not remembered: a reopen may turn lazy refcounts on */
        return 0;
    }
    if (s->dirty_marked || (s->incompat & QCOW2_INCOMPAT_DIRTY)) {
        s->dirty_marked = true;
        return 0;
    }
    ret = bd_child_co_flush(s->file);
    if (ret == 0) {
        ret = qcow2_write_incompat(s, s->incompat | QCOW2_INCOMPAT_DIRTY);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        s->dirty_marked = true;
    }
    return ret;
}

int qcow2_write_caches(Qcow2State *s)
{
    int ret = qcow2_cache_write(s->l2_cache);

    if (ret == 0) {
        ret = qcow2_cache_write(s->refcount_cache);
    }
    return ret;
}

int qcow2_mark_clean(Qcow2State *s)
{
    int ret;

    if (!(s->incompat & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    ret = qcow2_write_caches(s);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        ret = qcow2_write_incompat(s, s->incompat & ~QCOW2_INCOMPAT_DIRTY);
    }
    if (ret == 0) {
        s->dirty_marked = false;
    }
    return ret;
}

/* --- lock-free I/O vs. freeing clusters --- */

/*
 * Reads and in-place writes run without meta_lock; a cluster they use
 * must not be freed and handed out again under them.  Code that frees
 * clusters (holding meta_lock, so no new lock-free user can find them)
 * waits for the ones in progress.
 */
static void lockfree_begin(Qcow2State *s)
{
    __atomic_add_fetch(&s->lockfree_ops, 1, __ATOMIC_ACQ_REL);
}

static void lockfree_end(Qcow2State *s)
{
    __atomic_sub_fetch(&s->lockfree_ops, 1, __ATOMIC_ACQ_REL);
}

void qcow2_wait_lockfree_idle(Qcow2State *s)
{
    while (__atomic_load_n(&s->lockfree_ops, __ATOMIC_ACQUIRE) > 0) {
        bd_co_sleep_ns(20000);
    }
}

/* --- reads --- */

typedef struct DecompressJob {
    int type;
    void *dest;
    size_t dest_len;
    const void *src;
    size_t src_len;
} DecompressJob;

static int decompress_fn(void *opaque)
{
    DecompressJob *j = opaque;

    return qcow2_decompress(j->type, j->dest, j->dest_len, j->src,
                            j->src_len);
}

static int read_compressed(Qcow2State *s, uint64_t entry, int64_t in_cluster,
                           int64_t bytes, BdIOVector *qiov, size_t qoff)
{
    uint64_t coff = entry & s->cluster_offset_mask;
    uint64_t nb = ((entry >> s->csize_shift) & s->csize_mask) + 1;
    int64_t csize = nb * 512 - (coff & 511);
    g_autofree uint8_t *in = g_malloc(csize);
    g_autofree uint8_t *out = g_malloc(s->cluster_size);
    int ret;

    ret = qcow2_child_pread(s->file, coff, csize, in);
    if (ret < 0) {
        return ret;
    }
    {
        /*
         * in a worker thread, as QEMU decompresses: the loop serves other
         * requests meanwhile, and requests in flight decompress in
         * parallel
         */
        DecompressJob j = { s->compression_type, out, s->cluster_size, in,
                            csize };

        ret = bd_thread_pool_submit_co(NULL, decompress_fn, &j);
    }
    if (ret < 0) {
        return ret;
    }
    bd_iovec_from_buf(qiov, qoff, out + in_cluster, bytes);
    return 0;
}

/* Read [@offset, +@bytes) of the backing node into @qiov at @qoff. */
static int read_backing(Qcow2State *s, int64_t offset, int64_t bytes,
                        BdIOVector *qiov, size_t qoff)
{
    int64_t blen, n;
    BdIOVector sub;
    int ret;

    /* asked each time: block-stream and block-commit change the edge */
    BdChild *backing = bd_node_get_backing(s->node);

    if (!backing) {
        bd_iovec_memset(qiov, qoff, 0, bytes);
        return 0;
    }
    blen = bd_child_co_getlength(backing);
    if (blen < 0) {
        return blen;
    }
    n = offset < blen ? MIN(bytes, blen - offset) : 0;
    if (n > 0) {
        struct iovec *iov = g_new(struct iovec, qiov->niov);
        int niov = 0;
        size_t skip = qoff, left = n;

        /* the part of @qiov at [qoff, qoff + n) */
        for (int i = 0; i < qiov->niov && left; i++) {
            size_t l = qiov->iov[i].iov_len;

            if (skip >= l) {
                skip -= l;
                continue;
            }
            iov[niov].iov_base = (uint8_t *)qiov->iov[i].iov_base + skip;
            iov[niov].iov_len = MIN(l - skip, left);
            left -= iov[niov].iov_len;
            skip = 0;
            niov++;
        }
        bd_iovec_init_external(&sub, iov, niov);
        ret = bd_child_co_preadv(backing, offset, n, &sub, 0);
        g_free(iov);
        if (ret < 0) {
            return ret;
        }
    }
    if (n < bytes) {
        bd_iovec_memset(qiov, qoff + n, 0, bytes - n);
    }
    return 0;
}

/* A sub-vector of @qiov at [@qoff, +@len) over the caller's @iov. */
static void sub_iovec(BdIOVector *sub, struct iovec *iov, BdIOVector *qiov,
                      size_t qoff, size_t len)
{
    int niov = 0;

    for (int i = 0; i < qiov->niov && len; i++) {
        size_t l = qiov->iov[i].iov_len;

        if (qoff >= l) {
            qoff -= l;
            continue;
        }
        iov[niov].iov_base = (uint8_t *)qiov->iov[i].iov_base + qoff;
        iov[niov].iov_len = MIN(l - qoff, len);
        len -= iov[niov].iov_len;
        qoff = 0;
        niov++;
    }
    bd_iovec_init_external(sub, iov, niov);
}

int qcow2_child_preadv(BdChild *child, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, size_t qoff)
{
    int64_t len = bd_child_co_getlength(child);
    int64_t n;
    int ret = 0;

    if (len < 0) {
        return len;
    }
    /* an offset from a corrupt descriptor: no arithmetic may overflow */
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    /* past the end of the file reads as zeroes, as QEMU reads it */
    n = offset >= len ? 0 : MIN(bytes, len - offset);
    if (n > 0) {
        struct iovec *iov = g_new(struct iovec, qiov->niov);
        BdIOVector sub;

        sub_iovec(&sub, iov, qiov, qoff, n);
        ret = bd_child_co_preadv(child, offset, n, &sub, 0);
        g_free(iov);
    }
    if (ret == 0 && n < bytes) {
        bd_iovec_memset(qiov, qoff + n, 0, bytes - n);
    }
    return ret;
}

int qcow2_child_pread(BdChild *child, int64_t offset, int64_t bytes,
                      void *buf)
{
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, buf, bytes);
    return qcow2_child_preadv(child, offset, bytes, &qiov, 0);
}

/* Guest read of [@offset, +@bytes) into @qiov at @qoff. */
static int qcow2_read(Qcow2State *s, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, size_t qoff)
{
    int ret = 0;

    lockfree_begin(s);
    while (bytes > 0) {
        Qcow2ClusterType type;
        uint64_t host;
        int64_t n;
        bool copied;

        ret = qcow2_get_host_offset(s, offset, bytes, &type, &host, &n,
                                    &copied);
        if (ret < 0) {
            break;
        }
        switch (type) {
        case QCOW2_UNALLOCATED:
        case QCOW2_UNALLOCATED_ALLOC:
            ret = read_backing(s, offset, n, qiov, qoff);
            break;
        case QCOW2_ZERO_PLAIN:
        case QCOW2_ZERO_ALLOC:
            bd_iovec_memset(qiov, qoff, 0, n);
            break;
        case QCOW2_COMPRESSED:
            ret = read_compressed(s, host, offset_into_cluster(s, offset), n,
                                  qiov, qoff);
            break;
        case QCOW2_NORMAL:
            ret = qcow2_child_preadv(s->data_file, host, n, qiov, qoff);
            break;
        }
        if (ret < 0) {
            break;
        }
        offset += n;
        qoff += n;
        bytes -= n;
    }
    lockfree_end(s);
    return ret;
}

int qcow2_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                    BdIOVector *qiov, BdRequestFlags flags)
{
    Qcow2State *s = bd_node_get_opaque(node);

    if (qcow2_unusable(s)) {
        return -ENOMEDIUM;
    }
    return qcow2_read(s, offset, bytes, qiov, 0);
}

/* --- writes --- */

bool qcow2_find_inflight(Qcow2State *s, int64_t start, int64_t end,
                         BdCoQueue **queue)
{
    for (Qcow2InFlight *f = s->inflight; f; f = f->next) {
        if (f->start < end && start < f->end) {
            *queue = &f->waiters;
            return true;
        }
    }
    return false;
}

static Qcow2InFlight *find_inflight(Qcow2State *s, int64_t start,
                                    int64_t end)
{
    for (Qcow2InFlight *f = s->inflight; f; f = f->next) {
        if (f->start < end && start < f->end) {
            return f;
        }
    }
    return NULL;
}

static void remove_inflight(Qcow2State *s, Qcow2InFlight *f)
{
    for (Qcow2InFlight **p = &s->inflight; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    bd_co_queue_restart_all(&f->waiters);
}

/* Is the L2 entry one that a write may use in place? */
static bool writable_in_place(Qcow2State *s, uint64_t entry, uint64_t bitmap,
                              int sc_first, int sc_last)
{
    if ((entry & QCOW_OFLAG_COMPRESSED) || !(entry & QCOW_OFLAG_COPIED) ||
        !l2e_has_host(s, entry)) {
        return false;
    }
    if (!s->extended_l2) {
        return !(entry & QCOW_OFLAG_ZERO);
    }
    for (int sc = sc_first; sc <= sc_last; sc++) {
        if (!((bitmap >> sc) & 1) || ((bitmap >> (32 + sc)) & 1)) {
            return false;
        }
    }
    return true;
}

/* The bits of subclusters [@first, @last] in a bitmap half. */
static uint64_t sc_bits(int first, int last)
{
    return ((2ull << last) - 1) & ~((1ull << first) - 1);
}

/*
 * Write [@offset, +@bytes) of @qiov (at @qoff), all inside one L2 slice,
 * to new clusters (or, with extended L2, to the unallocated subclusters
 * of an owned cluster).  Returns the bytes done (> 0) or -errno.
 */
static int64_t write_alloc(Qcow2State *s, int64_t offset, int64_t bytes,
                           BdIOVector *qiov, size_t qoff)
{
    int64_t cs = s->cluster_size;
    int sc_per = 1 << (s->cluster_bits - s->subcluster_bits);
    int64_t cstart, cend, nc, host, len = 0, wstart, wend;
    uint64_t *slice;
    uint64_t *old_entries = NULL, *old_bitmaps = NULL;
    bool in_place = false, full_cow;
    Qcow2InFlight f = { 0 };
    uint8_t *head = NULL, *tail = NULL;
    int64_t head_len = 0, tail_len = 0;
    int index, ret;

    bd_co_mutex_lock(&s->meta_lock);
again:
    cstart = offset & ~(cs - 1);
    cend = (offset + bytes + cs - 1) & ~(cs - 1);
    if (find_inflight(s, cstart, cend)) {
        Qcow2InFlight *other = find_inflight(s, cstart, cend);

        if (other->start <= cstart) {
            /* the first cluster is being allocated: wait for it */
            bd_co_queue_wait(&other->waiters, &s->meta_lock);
            goto again;
        }
        /* stop before the other allocation */
        bytes = other->start - offset;
        cend = other->start;
    }
    ret = qcow2_get_l2_slice_alloc(s, offset, &slice, &index);
    if (ret < 0) {
        goto out_unlock;
    }
    /* how many clusters from here need a new host cluster */
    nc = (cend - cstart) >> s->cluster_bits;
    nc = MIN(nc, s->l2_slice_size - index);
    {
        uint64_t e0 = qcow2_l2_get(s, slice, index);
        uint64_t b0 = qcow2_l2_get_bitmap(s, slice, index);
        int first_sc = (offset >> s->subcluster_bits) & (sc_per - 1);
        int64_t in0 = MIN(bytes, cs - offset_into_cluster(s, offset));
        int last_sc = ((offset + in0 - 1) >> s->subcluster_bits) &
                      (sc_per - 1);

        if (writable_in_place(s, e0, b0, first_sc, last_sc)) {
            /* allocated meanwhile by the write we waited for */
            qcow2_cache_put(s->l2_cache, slice);
            bd_co_mutex_unlock(&s->meta_lock);
            return 0;
        }
        if (s->extended_l2 && (e0 & QCOW_OFLAG_COPIED) &&
            l2e_has_host(s, e0) && !(e0 & QCOW_OFLAG_COMPRESSED)) {
            /* an owned cluster with unallocated subclusters */
            in_place = true;
            nc = 1;
        }
    }
    for (int64_t i = 1; i < nc; i++) {
        uint64_t e = qcow2_l2_get(s, slice, index + i);

        if (((e & QCOW_OFLAG_COPIED) && l2e_has_host(s, e)) ||
            (e & QCOW_OFLAG_COMPRESSED)) {
            nc = i;
            break;
        }
    }
    if (qcow2_l2_get(s, slice, index) & QCOW_OFLAG_COMPRESSED) {
        nc = 1;
    }
    len = MIN(bytes, nc * cs - offset_into_cluster(s, offset));
    nc = (offset + len - cstart + cs - 1) >> s->cluster_bits;
    cend = cstart + nc * cs;
    old_entries = g_new(uint64_t, nc);
    old_bitmaps = g_new(uint64_t, nc);
    for (int64_t i = 0; i < nc; i++) {
        old_entries[i] = qcow2_l2_get(s, slice, index + i);
        old_bitmaps[i] = qcow2_l2_get_bitmap(s, slice, index + i);
    }
    qcow2_cache_put(s->l2_cache, slice);

    if (in_place) {
        host = old_entries[0] & L2E_OFFSET_MASK;
    } else if (has_data_file(s)) {
        /*
         * an external data file holds every cluster at its guest offset,
         * without refcounts (as QEMU allocates them)
         */
        host = cstart;
    } else {
        int64_t got;

        host = qcow2_alloc_clusters_upto(s, nc, &got);
        if (host < 0) {
            ret = host;
            goto out_unlock;
        }
        if (got < nc) {
            /* the free run was shorter: write what it holds */
            nc = got;
            len = MIN(len, nc * cs - offset_into_cluster(s, offset));
            cend = cstart + nc * cs;
        }
    }
    f.start = cstart;
    f.end = cend;
    bd_co_queue_init(&f.waiters);
    f.next = s->inflight;
    s->inflight = &f;
    bd_co_mutex_unlock(&s->meta_lock);

    /*
     * Copy-on-write around the guest data: whole clusters, except with
     * extended L2 where a cluster that had no data keeps its other
     * subclusters as they were and only the partial subclusters at the
     * ends are copied.
     */
    full_cow = true;
    if (s->extended_l2) {
        Qcow2ClusterType t0 = qcow2_entry_type(s, old_entries[0],
                                               old_bitmaps[0], 0);
        Qcow2ClusterType tn = qcow2_entry_type(s, old_entries[nc - 1],
                                               old_bitmaps[nc - 1], 0);

        full_cow = t0 == QCOW2_COMPRESSED || tn == QCOW2_COMPRESSED ||
                   (!in_place &&
                    (l2e_has_host(s, old_entries[0]) ||
                     l2e_has_host(s, old_entries[nc - 1])));
    }
    if (full_cow) {
        wstart = cstart;
        wend = cend;
    } else {
        wstart = offset & ~(s->subcluster_size - 1);
        wend = (offset + len + s->subcluster_size - 1) &
               ~(s->subcluster_size - 1);
    }
    head_len = offset - wstart;
    tail_len = wend - (offset + len);
    if (head_len) {
        BdIOVector hq;

        head = bd_node_try_blockalign(s->node, head_len);
        bd_iovec_init_buf(&hq, head, head_len);
        ret = head ? qcow2_read(s, wstart, head_len, &hq, 0) : -ENOMEM;
        if (ret < 0) {
            goto out_relock;
        }
    }
    if (tail_len) {
        BdIOVector tq;

        tail = bd_node_try_blockalign(s->node, tail_len);
        bd_iovec_init_buf(&tq, tail, tail_len);
        ret = tail ? qcow2_read(s, offset + len, tail_len, &tq, 0)
                   : -ENOMEM;
        if (ret < 0) {
            goto out_relock;
        }
    }
    ret = data_overlap_check(s, host + (wstart - cstart), wend - wstart);
    if (ret < 0) {
        goto out_relock;
    }
    {
        struct iovec *iov = g_new(struct iovec, qiov->niov + 2);
        BdIOVector sub, all;
        int n = 0;

        if (head_len) {
            iov[n].iov_base = head;
            iov[n++].iov_len = head_len;
        }
        sub_iovec(&sub, iov + n, qiov, qoff, len);
        n += sub.niov;
        if (tail_len) {
            iov[n].iov_base = tail;
            iov[n++].iov_len = tail_len;
        }
        bd_iovec_init_external(&all, iov, n);
        ret = bd_child_co_pwritev(s->data_file, host + (wstart - cstart),
                                  wend - wstart, &all, 0);
        g_free(iov);
    }

out_relock:
    bd_co_mutex_lock(&s->meta_lock);
    if (ret == 0) {
        ret = qcow2_mark_dirty(s);
    }
    if (ret == 0) {
        ret = qcow2_get_l2_slice(s, offset, &slice, &index);
        if (ret == 0 && !slice) {
            ret = -EIO;
        }
    }
    if (ret == 0) {
        bool need_free = false;

        for (int64_t i = 0; i < nc; i++) {
            uint64_t entry = (host + i * cs) | QCOW_OFLAG_COPIED;
            uint64_t bitmap = 0;

            if (s->extended_l2) {
                if (full_cow) {
                    bitmap = sc_bits(0, sc_per - 1);
                } else {
                    int64_t c0 = cstart + i * cs;
                    int64_t a = MAX(wstart, c0), b = MIN(wend, c0 + cs);
                    int f0 = (a - c0) >> s->subcluster_bits;
                    int f1 = ((b - c0) >> s->subcluster_bits) - 1;
                    uint64_t bits = sc_bits(f0, f1);

                    bitmap = old_bitmaps[i];
                    bitmap |= bits;
                    bitmap &= ~(bits << 32);
                }
            }
            qcow2_l2_set(s, slice, index + i, entry, bitmap);
            if (!in_place && (l2e_has_host(s, old_entries[i]) ||
                              (old_entries[i] & QCOW_OFLAG_COMPRESSED))) {
                need_free = true;
            }
        }
        qcow2_cache_mark_dirty(s->l2_cache, slice);
        qcow2_cache_put(s->l2_cache, slice);
        if (need_free && !has_data_file(s)) {
            /* the old clusters: shared ones keep their other owners */
            /* the new entries on disk before the old clusters may be reused */
            if (s->use_lazy_refcounts ||
                qcow2_cache_flush(s->l2_cache) == 0) {
                qcow2_wait_lockfree_idle(s);
                for (int64_t i = 0; i < nc; i++) {
                    qcow2_free_l2_entry(s, old_entries[i]);
                }
            }
        }
    } else if (!in_place && !has_data_file(s)) {
        /* nothing points to the new clusters: give them back */
        qcow2_free_clusters(s, host, nc * cs, false);
    }
    remove_inflight(s, &f);

out_unlock:
    bd_co_mutex_unlock(&s->meta_lock);
    free(head);
    free(tail);
    g_free(old_entries);
    g_free(old_bitmaps);
    return ret < 0 ? ret : len;
}

int qcow2_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags)
{
    Qcow2State *s = bd_node_get_opaque(node);
    size_t qoff = 0;
    int ret = 0;

    if (qcow2_unusable(s)) {
        return -ENOMEDIUM;
    }
    if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
        return -EIO;
    }
    if (flags & BD_REQ_WRITE_COMPRESSED) {
        return qcow2_co_pwritev_compressed(s, offset, bytes, qiov);
    }
    while (bytes > 0) {
        Qcow2ClusterType type;
        uint64_t host;
        int64_t n;
        bool copied;

        lockfree_begin(s);
        ret = qcow2_get_host_offset(s, offset, bytes, &type, &host, &n,
                                    &copied);
        if (ret == 0 && type == QCOW2_NORMAL && copied) {
            struct iovec *iov = g_new(struct iovec, qiov->niov);
            BdIOVector sub;

            ret = data_overlap_check(s, host, n);
            if (ret == 0) {
                sub_iovec(&sub, iov, qiov, qoff, n);
                ret = bd_child_co_pwritev(s->data_file, host, n, &sub, 0);
            }
            g_free(iov);
            lockfree_end(s);
        } else {
            lockfree_end(s);
            if (ret == 0) {
                n = write_alloc(s, offset, n, qiov, qoff);
                ret = n < 0 ? n : 0;
            }
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        qoff += n;
        bytes -= n;
    }
    if (flags & BD_REQ_FUA) {
        ret = qcow2_co_flush(node);
        if (ret == 0) {
            ret = bd_child_co_flush(s->file);
        }
    }
    return ret;
}

/* --- block status, flush --- */

int qcow2_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                          int64_t bytes, int64_t *pnum, int64_t *map,
                          BdNode **file)
{
    Qcow2State *s = bd_node_get_opaque(node);
    Qcow2ClusterType type;
    uint64_t host;
    bool copied;
    int ret, status = 0;

    if (qcow2_unusable(s)) {
        return -ENOMEDIUM;
    }
    ret = qcow2_get_host_offset(s, offset, bytes, &type, &host, pnum,
                                &copied);
    if (ret < 0) {
        return ret;
    }
    if (type == QCOW2_NORMAL || type == QCOW2_ZERO_ALLOC ||
        type == QCOW2_UNALLOCATED_ALLOC) {
        *map = host;
        *file = bd_child_get_node(s->data_file);
        status |= BD_BLOCK_OFFSET_VALID;
    }
    if (type == QCOW2_ZERO_PLAIN || type == QCOW2_ZERO_ALLOC) {
        status |= BD_BLOCK_ZERO;
    } else if (type != QCOW2_UNALLOCATED &&
               type != QCOW2_UNALLOCATED_ALLOC) {
        status |= BD_BLOCK_DATA;
    }
    return status;
}

int qcow2_co_flush(BdNode *node)
{
    Qcow2State *s = bd_node_get_opaque(node);
    int ret;

    if (qcow2_unusable(s)) {
        return 0;
    }
    bd_co_mutex_lock(&s->meta_lock);
    ret = qcow2_write_caches(s);
    bd_co_mutex_unlock(&s->meta_lock);
    return ret;
}
