/*
 * block-qcow2: compressed writes (BD_REQ_WRITE_COMPRESSED), as QEMU 7.2's
 * qcow2_co_pwritev_compressed_part() writes them: whole clusters at
 * cluster-aligned offsets (a shorter last cluster only at the end of the
 * image, padded with zeroes), compressed with the image's compression
 * type (zlib: raw deflate with a 4 KiB window; zstd: one frame), into
 * clusters that were not allocated (compression never overwrites: -EIO,
 * as QEMU).  A cluster that does not shrink below its size is written
 * the normal way.
 *
 * The compression runs in the thread pool, off the event loop; requests
 * for several clusters compress them one by one in the pool while other
 * requests go on, and concurrent requests compress in parallel.
 *
 * Each compressed cluster gets host clusters of its own (QEMU packs
 * several into one host cluster; its images are read here all the same):
 * the data is written before the L2 entry that points to it, under
 * meta_lock, so a reader sees either nothing or the whole cluster.
 */
#include <errno.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "qcow2.h"

#define COMPRESSED_SECTOR 512

typedef struct CompressJob {
    int type;
    void *dest;
    size_t dest_len;
    const void *src;
    size_t src_len;
} CompressJob;

static int compress_zlib(CompressJob *j)
{
    z_stream strm = { 0 };
    int ret;

    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -EIO;
    }
    strm.next_in = (Bytef *)j->src;
    strm.avail_in = j->src_len;
    strm.next_out = j->dest;
    strm.avail_out = j->dest_len;
    ret = deflate(&strm, Z_FINISH);
    if (ret == Z_STREAM_END) {
        ret = (int)(j->dest_len - strm.avail_out);
    } else {
        /* Z_OK or Z_BUF_ERROR: it did not fit */
        ret = ret == Z_OK || ret == Z_BUF_ERROR ? -ENOMEM : -EIO;
    }
    deflateEnd(&strm);
    return ret;
}

static int compress_zstd(CompressJob *j)
{
    size_t n = ZSTD_compress(j->dest, j->dest_len, j->src, j->src_len,
                             ZSTD_CLEVEL_DEFAULT);

    if (ZSTD_isError(n)) {
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ?
               -ENOMEM : -EIO;
    }
    return (int)n;
}

/* In a worker thread: the compressed size, -ENOMEM if it does not fit. */
static int compress_fn(void *opaque)
{
    CompressJob *j = opaque;

    return j->type == QCOW2_COMPRESSION_ZSTD ? compress_zstd(j)
                                             : compress_zlib(j);
}

int qcow2_compress(int type, void *dest, size_t dest_len, const void *src,
                   size_t src_len)
{
    CompressJob j = { type, dest, dest_len, src, src_len };

    return compress_fn(&j);
}

/*
 * coroutine_fn: point guest cluster @offset at @len compressed bytes in
 * @buf: new host clusters, the data, then the L2 entry.
 */
static int write_compressed_cluster(Qcow2State *s, int64_t offset,
                                    const void *buf, int len)
{
    int64_t host, nclusters = size_to_clusters(s, len);
    uint64_t *slice, entry, nb_csectors;
    BdCoQueue *queue;
    int index, ret;

    bd_co_mutex_lock(&s->meta_lock);
    /* a normal write allocating this cluster goes first */
    while (qcow2_find_inflight(s, offset, offset + s->cluster_size,
                               &queue)) {
        bd_co_queue_wait(queue, &s->meta_lock);
    }
    ret = qcow2_get_l2_slice_alloc(s, offset, &slice, &index);
    if (ret < 0) {
        goto out;
    }
    if (qcow2_l2_get(s, slice, index) & L2E_OFFSET_MASK) {
        /* compression cannot overwrite anything (QEMU's rule) */
        qcow2_cache_put(s->l2_cache, slice);
        ret = -EIO;
        goto out;
    }
    host = qcow2_alloc_clusters(s, nclusters);
    if (host < 0) {
        qcow2_cache_put(s->l2_cache, slice);
        ret = (int)host;
        goto out;
    }
    ret = qcow2_pre_write_overlap_check(s, 0, host, len);
    if (ret == 0) {
        ret = bd_child_co_pwrite(s->file, host, len, buf, 0);
    }
    if (ret == 0) {
        ret = qcow2_mark_dirty(s);
    }
    if (ret < 0) {
        qcow2_cache_put(s->l2_cache, slice);
        qcow2_free_clusters(s, host, nclusters << s->cluster_bits, false);
        goto out;
    }
    nb_csectors = (uint64_t)((host + len - 1) / COMPRESSED_SECTOR -
                             host / COMPRESSED_SECTOR);
    entry = (uint64_t)host | QCOW_OFLAG_COMPRESSED |
            (nb_csectors << s->csize_shift);
    /* extended L2: a compressed cluster's bitmap is zero */
    qcow2_l2_set(s, slice, index, entry, 0);
    qcow2_cache_mark_dirty(s->l2_cache, slice);
    qcow2_cache_put(s->l2_cache, slice);
out:
    bd_co_mutex_unlock(&s->meta_lock);
    return ret;
}

int qcow2_co_pwritev_compressed(Qcow2State *s, int64_t offset,
                                int64_t bytes, BdIOVector *qiov)
{
    g_autofree uint8_t *in = NULL;
    g_autofree uint8_t *out = NULL;
    size_t qoff = 0;
    int ret = 0;

    if (has_data_file(s)) {
        return -ENOTSUP;
    }
    if (offset_into_cluster(s, offset)) {
        return -EINVAL;
    }
    in = g_malloc(s->cluster_size);
    out = g_malloc(s->cluster_size);
    while (bytes > 0 && ret == 0) {
        int64_t n = MIN(bytes, s->cluster_size);
        CompressJob j;
        int len;

        if (n != s->cluster_size && offset + n != s->size) {
            /* only the image's last cluster may be short */
            return -EINVAL;
        }
        bd_iovec_to_buf(qiov, qoff, in, n);
        memset(in + n, 0, s->cluster_size - n);
        /* smaller than the cluster, or not worth it */
        j = (CompressJob){ s->compression_type, out, s->cluster_size - 1,
                           in, s->cluster_size };
        len = bd_thread_pool_submit_co(NULL, compress_fn, &j);
        if (len == -ENOMEM) {
            BdIOVector one;

            bd_iovec_init_buf(&one, in, n);
            ret = qcow2_co_pwritev(s->node, offset, n, &one, 0);
        } else if (len < 0) {
            ret = len;
        } else {
            ret = write_compressed_cluster(s, offset, out, len);
        }
        offset += n;
        qoff += n;
        bytes -= n;
    }
    return ret;
}
