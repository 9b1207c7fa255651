/*
 * block-qcow2: resizing (block_resize), under QEMU 7.2's rules: whole
 * sectors, no images with internal snapshots, shrinking drops the
 * clusters past the end; the L1 table grows when the disk does.
 *
 * A new L1 table is written and flushed before the header points to it,
 * and the old one is freed after.
 *
 * Growing with preallocation (QEMU's modes): every new guest cluster gets
 * a host cluster and a normal L2 entry (metadata); falloc and full also
 * make the file hold the data clusters (the file's own preallocation for
 * the part past its end).  Host clusters reused from inside the file are
 * zeroed first, so that no stale data shows through a new mapping.  With
 * an external data file only the L2 entries are made (each cluster at
 * its guest offset) and the data file grows with the mode's own
 * preallocation, as QEMU does.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

static int write_header_field(Qcow2State *s, int64_t off, const void *buf,
                              int64_t len)
{
    int ret = bd_child_co_pwrite(s->file, off, len, buf, 0);

    return ret < 0 ? ret : bd_child_co_flush(s->file);
}

/* meta_lock held: an L1 table of @new_size entries in new clusters. */
static int grow_l1(Qcow2State *s, uint32_t new_size)
{
    int64_t bytes = ((int64_t)new_size * 8 + 511) & ~511ll;
    int64_t old_offset = s->l1_table_offset;
    int64_t old_bytes = (int64_t)s->l1_size * 8;
    int64_t new_offset;
    uint64_t *be, *table;
    uint8_t hdr[12];
    int ret;

    new_offset = qcow2_alloc_clusters(s, size_to_clusters(s, bytes));
    if (new_offset < 0) {
        return new_offset;
    }
    ret = qcow2_cache_flush(s->refcount_cache);
    if (ret < 0) {
        return ret;
    }
    be = g_malloc0(bytes);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        be[i] = GUINT64_TO_BE(s->l1_table[i]);
    }
    ret = qcow2_pre_write_overlap_check(s, 0, new_offset, bytes);
    if (ret == 0) {
        /* the entries only, as QEMU writes them: the file may end there */
        ret = bd_child_co_pwrite(s->file, new_offset,
                                 (int64_t)new_size * 8, be, 0);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    g_free(be);
    if (ret < 0) {
        qcow2_free_clusters(s, new_offset, bytes, false);
        return ret;
    }
    {
        /* l1_size and l1_table_offset, one write; unaligned in hdr */
        uint32_t be_size = GUINT32_TO_BE(new_size);
        uint64_t be_off = GUINT64_TO_BE((uint64_t)new_offset);

        memcpy(hdr, &be_size, 4);
        memcpy(hdr + 4, &be_off, 8);
    }
    ret = write_header_field(s, 36, hdr, sizeof(hdr));
    if (ret < 0) {
        qcow2_free_clusters(s, new_offset, bytes, false);
        return ret;
    }
    /* readers load entries atomically; the old array lives until close */
    table = g_new0(uint64_t, new_size);
    if (old_bytes) {
        /* a new image has no table yet (NULL) */
        memcpy(table, s->l1_table, old_bytes);
    }
    s->retired_l1 = g_slist_prepend(s->retired_l1, s->l1_table);
    __atomic_store_n(&s->l1_table, table, __ATOMIC_RELEASE);
    s->l1_table_offset = new_offset;
    __atomic_store_n(&s->l1_size, new_size, __ATOMIC_RELEASE);
    if (old_bytes) {
        return qcow2_free_clusters(s, old_offset, old_bytes,
                                   s->discard_passthrough_other);
    }
    return 0;
}

/* meta_lock held: drop the L2 tables of L1 entries from @new_size on. */
static int shrink_l1(Qcow2State *s, uint32_t new_size)
{
    g_autoptr(GArray) l2s = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int64_t first = new_size & ~63u;
    int64_t n = (int64_t)s->l1_size - first;
    g_autofree uint64_t *be = NULL;
    int ret;

    if (new_size >= s->l1_size) {
        return 0;
    }
    for (uint32_t i = new_size; i < s->l1_size; i++) {
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;

        if (l2) {
            g_array_append_val(l2s, l2);
        }
        __atomic_store_n(&s->l1_table[i], 0, __ATOMIC_RELEASE);
    }
    be = g_new0(uint64_t, n);
    for (int64_t i = 0; i < n; i++) {
        be[i] = GUINT64_TO_BE(s->l1_table[first + i]);
    }
    /* the entries gone on disk before their tables are freed */
    ret = bd_child_co_pwrite(s->file, s->l1_table_offset + first * 8, n * 8,
                             be, 0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    qcow2_wait_lockfree_idle(s);
    for (guint i = 0; i < l2s->len; i++) {
        int64_t off = g_array_index(l2s, uint64_t, i);

        ret = qcow2_free_clusters(s, off, s->cluster_size,
                                  s->discard_passthrough_other);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * Zero buffers written to [@host, +@len) of the file: falloc and full
 * need the blocks allocated, which a write-zeroes request may not do.
 */
static int write_zero_data(Qcow2State *s, int64_t host, int64_t len)
{
    int64_t chunk = MIN(len, 1 << 20);
    g_autofree void *zero = g_malloc0(chunk);
    int ret = 0;

    for (int64_t done = 0; done < len && ret == 0; done += chunk) {
        ret = bd_child_co_pwrite(s->file, host + done,
                                 MIN(chunk, len - done), zero, 0);
    }
    return ret;
}

/* meta_lock held: host clusters for guest [@from, @to) (see the top). */
static int preallocate(Qcow2State *s, int64_t from, int64_t to,
                       BdPreallocMode mode, GError **errp)
{
    int64_t cs = s->cluster_size;
    int64_t file_len = bd_child_co_getlength(s->file);
    int64_t host_end = 0;
    int64_t c = from & ~(cs - 1);
    /* host ranges allocated past the file's end, (offset, length) pairs */
    g_autoptr(GArray) fresh = g_array_new(FALSE, FALSE, sizeof(int64_t));
    int64_t cur_len;
    int ret;

    if (file_len < 0) {
        bd_error_setg(errp, "Could not get the file size: %s", g_strerror(-file_len));
        return file_len;
    }
    while (c < to) {
        uint64_t *slice;
        int index;
        int64_t n, run = 0, got, host;

        ret = qcow2_get_l2_slice_alloc(s, c, &slice, &index);
        if (ret < 0) {
            goto fail;
        }
        n = MIN((to - c + cs - 1) >> s->cluster_bits,
                s->l2_slice_size - index);
        while (run < n) {
            uint64_t e = qcow2_l2_get(s, slice, index + run);

            if (l2e_has_host(s, e) || (e & QCOW_OFLAG_COMPRESSED)) {
                break;
            }
            run++;
        }
        if (run == 0) {
            /* a cluster that has data already keeps it */
            qcow2_cache_put(s->l2_cache, slice);
            c += cs;
            continue;
        }
        if (has_data_file(s)) {
            /*
             * an external data file holds each cluster at its guest
             * offset, unrefcounted: only the L2 entries are new, and
             * what the file holds there stays (a raw data file's
             * content is the image's)
             */
            for (int64_t i = 0; i < run; i++) {
                qcow2_l2_set(s, slice, index + i,
                             (c + i * cs) | QCOW_OFLAG_COPIED, 0);
            }
            qcow2_cache_mark_dirty(s->l2_cache, slice);
            qcow2_cache_put(s->l2_cache, slice);
            c += run * cs;
            continue;
        }
        host = qcow2_alloc_clusters_upto(s, run, &got);
        if (host < 0) {
            qcow2_cache_put(s->l2_cache, slice);
            ret = host;
            goto fail;
        }
        if (host < file_len) {
            int64_t len = MIN(got * cs, file_len - host);

            ret = mode == BD_PREALLOC_METADATA
                ? bd_child_co_pwrite_zeroes(s->file, host, len, 0)
                : write_zero_data(s, host, len);
            if (ret < 0) {
                qcow2_cache_put(s->l2_cache, slice);
                qcow2_free_clusters(s, host, got * cs, false);
                goto fail;
            }
        }
        /*
         * with extended L2 the subclusters stay unallocated (their data
         * still comes from the backing file or reads as zeroes), as QEMU
         * preallocates them
         */
        for (int64_t i = 0; i < got; i++) {
            qcow2_l2_set(s, slice, index + i,
                         (host + i * cs) | QCOW_OFLAG_COPIED, 0);
        }
        qcow2_cache_mark_dirty(s->l2_cache, slice);
        qcow2_cache_put(s->l2_cache, slice);
        if (host + got * cs > file_len) {
            int64_t start = MAX(host, file_len), len = host + got * cs - start;

            g_array_append_val(fresh, start);
            g_array_append_val(fresh, len);
        }
        host_end = MAX(host_end, host + got * cs);
        c += got * cs;
    }
    /*
     * Past the old end: the file's own preallocation for what lies past
     * its current end; L2 tables or refcount blocks written after the
     * data clusters may have moved that end, so the data clusters below
     * it are written as zeroes for falloc and full.
     */
    if (has_data_file(s)) {
        /* the data file reaches the new end, allocated as @mode says */
        cur_len = bd_child_co_getlength(s->data_file);
        if (cur_len < 0) {
            ret = cur_len;
            goto fail;
        }
        if (to > cur_len) {
            return bd_child_co_truncate(s->data_file, to, false,
                                        mode == BD_PREALLOC_METADATA ?
                                        BD_PREALLOC_OFF : mode, 0, errp);
        }
        return 0;
    }
    cur_len = bd_child_co_getlength(s->file);
    if (cur_len < 0) {
        ret = cur_len;
        goto fail;
    }
    if (host_end > cur_len) {
        ret = bd_child_co_truncate(s->file, host_end, false,
                                   mode == BD_PREALLOC_METADATA ?
                                   BD_PREALLOC_OFF : mode, 0, errp);
        if (ret < 0) {
            return ret;
        }
    }
    for (guint i = 0; mode != BD_PREALLOC_METADATA && i < fresh->len;
         i += 2) {
        int64_t start = g_array_index(fresh, int64_t, i);
        int64_t end = MIN(start + g_array_index(fresh, int64_t, i + 1),
                          cur_len);

        if (end > start) {
            ret = write_zero_data(s, start, end - start);
            if (ret < 0) {
                goto fail;
            }
        }
    }
    return 0;

fail:
    bd_error_setg(errp, "Could not preallocate new clusters: %s", g_strerror(-ret));
    return ret;
}

/* meta_lock held: the last cluster in use below @size (QEMU's). */
static int64_t last_used_cluster(Qcow2State *s, int64_t size)
{
    for (int64_t i = size_to_clusters(s, size) - 1; i >= 0; i--) {
        uint64_t rc;
        int ret = qcow2_get_refcount(s, i, &rc);

        if (ret < 0) {
            return ret;
        }
        if (rc) {
            return i;
        }
    }
    qcow2_signal_corruption(s, true, -1, -1,
                            "There are no references in the refcount table.");
    return -EIO;
}

/*
 * meta_lock held: falloc and full preallocation from a cluster-aligned
 * @old_length, as QEMU lays it out: refcount structures for the whole
 * new area past the last used cluster (qcow2_refcount_area()), the data
 * clusters right after them in one run that the file allocates itself
 * (its own preallocation), then the L2 entries (their tables where
 * clusters are free, the old refcount table's first).
 */
static int preallocate_area(Qcow2State *s, int64_t old_length,
                            int64_t offset, BdPreallocMode mode,
                            GError **errp)
{
    int64_t cs = s->cluster_size;
    int64_t file_size = bd_child_co_getlength(s->file);
    int64_t last, start, nb_data, nb_l2, guest, host, end;
    int ret;

    if (file_size < 0) {
        bd_error_setg(errp, "Failed to get the file size: %s",
                      g_strerror(-file_size));
        return file_size;
    }
    file_size = (file_size + cs - 1) & ~(cs - 1);
    last = last_used_cluster(s, file_size);
    if (last < 0) {
        bd_error_setg(errp, "Failed to find the last cluster: %s",
                      g_strerror(-last));
        return last;
    }
    file_size = (last + 1) * cs;
    end = (offset + cs - 1) & ~(cs - 1);
    nb_data = (end - (old_length & ~(cs - 1))) >> s->cluster_bits;
    /* an overestimate: one more for a head or tail across tables */
    nb_l2 = (nb_data + s->l2_size - 1) / s->l2_size + 1;
    start = qcow2_refcount_area(s, file_size, nb_data + nb_l2, true, 0, 0);
    if (start < 0) {
        bd_error_setg(errp, "Failed to resize refcount structures: %s",
                      g_strerror(-start));
        return start;
    }
    ret = qcow2_update_refcount(s, start, nb_data * cs, 1);
    if (ret < 0) {
        bd_error_setg(errp, "Failed to allocate data clusters: %s",
                      g_strerror(-ret));
        return ret;
    }
    ret = bd_child_co_truncate(s->file, start + nb_data * cs, false, mode, 0,
                               errp);
    if (ret < 0) {
        g_prefix_error(errp, "Failed to resize underlying file: ");
        qcow2_free_clusters(s, start, nb_data * cs, false);
        return ret;
    }
    guest = old_length & ~(cs - 1);
    host = start;
    while (guest < end) {
        uint64_t *slice;
        int index;
        int64_t n;

        ret = qcow2_get_l2_slice_alloc(s, guest, &slice, &index);
        if (ret < 0) {
            bd_error_setg(errp, "Failed to update L2 tables: %s",
                          g_strerror(-ret));
            return ret;
        }
        n = MIN((end - guest) >> s->cluster_bits, s->l2_slice_size - index);
        for (int64_t i = 0; i < n; i++) {
            uint64_t old = qcow2_l2_get(s, slice, index + i);

            /*
             * with extended L2 the subclusters stay unallocated, as
             * QEMU's preallocation leaves them
             */
            qcow2_l2_set(s, slice, index + i,
                         (host + i * cs) | QCOW_OFLAG_COPIED, 0);
            if (old) {
                /* nothing lives past the end; should something, free it */
                qcow2_free_l2_entry(s, old);
            }
        }
        qcow2_cache_mark_dirty(s->l2_cache, slice);
        qcow2_cache_put(s->l2_cache, slice);
        guest += n * cs;
        host += n * cs;
    }
    return 0;
}

int qcow2_co_truncate(BdNode *node, int64_t offset, bool exact,
                      BdPreallocMode prealloc, BdRequestFlags flags,
                      GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);
    int shift = s->cluster_bits + s->l2_bits;
    uint64_t new_l1 = ((uint64_t)offset + (1ull << shift) - 1) >> shift;
    uint64_t be;
    int ret;

    if (s->nb_snapshots) {
        bd_error_setg(errp, "Can't resize an image which has snapshots");
        return -ENOTSUP;
    }
    if (offset & 511) {
        bd_error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    if (prealloc != BD_PREALLOC_OFF && offset < s->size) {
        bd_error_setg(errp, "Preallocation can't be used for shrinking an image");
        return -ENOTSUP;
    }
    if (new_l1 > QCOW_MAX_L1_SIZE / 8) {
        bd_error_setg(errp, "Failed to grow the L1 table: File too large");
        return -EFBIG;
    }
    bd_co_mutex_lock(&s->meta_lock);
    if (offset < s->size) {
        int64_t from = (offset + s->cluster_size - 1) &
                       ~(s->cluster_size - 1);

        bd_co_mutex_unlock(&s->meta_lock);
        ret = from < s->size ?
              qcow2_zero_range(s, from, s->size - from, true, true, true) :
              0;
        bd_co_mutex_lock(&s->meta_lock);
        if (ret < 0) {
            bd_error_setg(errp, "Failed to discard cropped clusters: %s",
                        g_strerror(-ret));
            goto out;
        }
        ret = shrink_l1(s, new_l1);
        if (ret < 0) {
            bd_error_setg(errp, "Failed to reduce the number of L2 tables: %s",
                        g_strerror(-ret));
            goto out;
        }
    } else if (new_l1 > s->l1_size) {
        ret = grow_l1(s, new_l1);
        if (ret < 0) {
            bd_error_setg(errp, "Failed to grow the L1 table: %s", g_strerror(-ret));
            goto out;
        }
    }
    if ((prealloc == BD_PREALLOC_FALLOC || prealloc == BD_PREALLOC_FULL) &&
        !has_data_file(s) && !offset_into_cluster(s, s->size) &&
        offset >= s->size) {
        ret = preallocate_area(s, s->size, offset, prealloc, errp);
        if (ret < 0) {
            goto out;
        }
    } else if (prealloc != BD_PREALLOC_OFF && offset > s->size) {
        ret = preallocate(s, s->size, offset, prealloc, errp);
        if (ret < 0) {
            goto out;
        }
    }
    if (prealloc == BD_PREALLOC_OFF && has_data_file(s)) {
        /* QEMU resizes the data file too, exactly if asked so */
        ret = bd_child_co_truncate(s->data_file, offset, exact, prealloc,
                                   0, errp);
        if (ret < 0) {
            goto out;
        }
    }
    be = GUINT64_TO_BE((uint64_t)offset);
    ret = write_header_field(s, 24, &be, 8);
    if (ret < 0) {
        bd_error_setg(errp, "Failed to update the image size: %s", g_strerror(-ret));
        goto out;
    }
    s->size = offset;
out:
    bd_co_mutex_unlock(&s->meta_lock);
    return ret;
}
