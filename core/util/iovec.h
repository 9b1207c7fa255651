/*
 * Core helpers on plain iovec arrays, below the public BdIOVector API.
 * Any thread; none allocates.
 */
#ifndef BLOCKD_CORE_BLOCK_IOVEC_H
#define BLOCKD_CORE_BLOCK_IOVEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Copy between @iov (from byte @offset) and @buf; return bytes copied. */
size_t bd_iov_to_buf(const struct iovec *iov, int niov, size_t offset,
                     void *buf, size_t bytes);
size_t bd_iov_from_buf(const struct iovec *iov, int niov, size_t offset,
                       const void *buf, size_t bytes);
size_t bd_iov_memset(const struct iovec *iov, int niov, size_t offset,
                     int fillc, size_t bytes);

/*
 * Describe @bytes of @src from @offset in @dst (room for @dst_max
 * entries, pointing into @src's buffers).  Returns the number of entries,
 * or -1 if @dst_max is too small.
 */
int bd_iov_slice(struct iovec *dst, int dst_max, const struct iovec *src,
                 int niov, size_t offset, size_t bytes);

#endif /* BLOCKD_CORE_BLOCK_IOVEC_H */
