/*
 * BdIOVector: scatter/gather lists of request buffers (see <blockd/block.h>).
 */
#include <string.h>

#include <blockd/block.h>

#include "util/iovec.h"

void bd_iovec_init(BdIOVector *qiov, int alloc_hint)
{
    if (alloc_hint < 1) {
        alloc_hint = 1;
    }
    qiov->iov = g_new(struct iovec, alloc_hint);
    qiov->niov = 0;
    qiov->nalloc = alloc_hint;
    qiov->size = 0;
    qiov->local.iov_base = NULL;
    qiov->local.iov_len = 0;
}

void bd_iovec_init_buf(BdIOVector *qiov, void *buf, size_t len)
{
    qiov->local.iov_base = buf;
    qiov->local.iov_len = len;
    qiov->iov = &qiov->local;
    qiov->niov = 1;
    qiov->nalloc = -1;
    qiov->size = len;
}

void bd_iovec_init_external(BdIOVector *qiov, struct iovec *iov, int niov)
{
    qiov->iov = iov;
    qiov->niov = niov;
    qiov->nalloc = -1;
    qiov->size = 0;
    for (int i = 0; i < niov; i++) {
        qiov->size += iov[i].iov_len;
    }
    qiov->local.iov_base = NULL;
    qiov->local.iov_len = 0;
}

void bd_iovec_add(BdIOVector *qiov, void *base, size_t len)
{
    g_assert(qiov->nalloc >= 0);
    if (qiov->niov == qiov->nalloc) {
        qiov->nalloc = 2 * qiov->nalloc + 1;
        qiov->iov = g_renew(struct iovec, qiov->iov, qiov->nalloc);
    }
    qiov->iov[qiov->niov].iov_base = base;
    qiov->iov[qiov->niov].iov_len = len;
    qiov->niov++;
    qiov->size += len;
}

void bd_iovec_destroy(BdIOVector *qiov)
{
    if (qiov->nalloc >= 0) {
        g_free(qiov->iov);
    }
    memset(qiov, 0, sizeof(*qiov));
}

size_t bd_iov_to_buf(const struct iovec *iov, int niov, size_t offset,
                     void *buf, size_t bytes)
{
    size_t done = 0;

    for (int i = 0; i < niov && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, bytes - done);
        memcpy((char *)buf + done, (char *)iov[i].iov_base + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t bd_iov_from_buf(const struct iovec *iov, int niov, size_t offset,
                       const void *buf, size_t bytes)
{
    size_t done = 0;

    for (int i = 0; i < niov && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, bytes - done);
        memcpy((char *)iov[i].iov_base + offset, (const char *)buf + done, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t bd_iov_memset(const struct iovec *iov, int niov, size_t offset,
                     int fillc, size_t bytes)
{
    size_t done = 0;

    for (int i = 0; i < niov && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, bytes - done);
        memset((char *)iov[i].iov_base + offset, fillc, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t bd_iovec_to_buf(const BdIOVector *qiov, size_t offset, void *buf,
                       size_t bytes)
{
    return bd_iov_to_buf(qiov->iov, qiov->niov, offset, buf, bytes);
}

size_t bd_iovec_from_buf(BdIOVector *qiov, size_t offset, const void *buf,
                         size_t bytes)
{
    return bd_iov_from_buf(qiov->iov, qiov->niov, offset, buf, bytes);
}

size_t bd_iovec_memset(BdIOVector *qiov, size_t offset, int fillc,
                       size_t bytes)
{
    return bd_iov_memset(qiov->iov, qiov->niov, offset, fillc, bytes);
}

/* Word-at-a-time check; buffers are usually aligned, tails are rare. */
static bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len && ((uintptr_t)p & (sizeof(uint64_t) - 1))) {
        if (*p++) {
            return false;
        }
        len--;
    }
    while (len >= 4 * sizeof(uint64_t)) {
        const uint64_t *w = (const uint64_t *)(const void *)p;
        if (w[0] | w[1] | w[2] | w[3]) {
            return false;
        }
        p += 4 * sizeof(uint64_t);
        len -= 4 * sizeof(uint64_t);
    }
    while (len) {
        if (*p++) {
            return false;
        }
        len--;
    }
    return true;
}

bool bd_iovec_is_zero(const BdIOVector *qiov)
{
    for (int i = 0; i < qiov->niov; i++) {
        if (!buffer_is_zero(qiov->iov[i].iov_base, qiov->iov[i].iov_len)) {
            return false;
        }
    }
    return true;
}

int bd_iov_slice(struct iovec *dst, int dst_max, const struct iovec *src,
                 int niov, size_t offset, size_t bytes)
{
    int n = 0;

    for (int i = 0; i < niov && bytes; i++) {
        if (offset >= src[i].iov_len) {
            offset -= src[i].iov_len;
            continue;
        }
        if (n == dst_max) {
            return -1;
        }
        size_t len = MIN(src[i].iov_len - offset, bytes);
        dst[n].iov_base = (char *)src[i].iov_base + offset;
        dst[n].iov_len = len;
        n++;
        bytes -= len;
        offset = 0;
    }
    return n;
}
