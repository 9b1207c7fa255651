/*
 * block-qcow2: decompression of compressed clusters.  A compressed
 * cluster's stored length is rounded up to 512-byte sectors, so the data
 * may be followed by unrelated bytes: both decoders stop once the whole
 * cluster is out and ignore the rest.
 */
#include <errno.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "qcow2.h"

/* zlib as QEMU writes it: a raw deflate stream with a 4 KiB window. */
static int decompress_zlib(void *dest, size_t dest_len, const void *src,
                           size_t src_len)
{
    z_stream strm;
    int ret;

    memset(&strm, 0, sizeof(strm));
    strm.next_in = (Bytef *)src;
    strm.avail_in = src_len;
    strm.next_out = dest;
    strm.avail_out = dest_len;
    if (inflateInit2(&strm, -12) != Z_OK) {
        return -EIO;
    }
    ret = inflate(&strm, Z_FINISH);
    /*
     * Z_BUF_ERROR with a full output is fine: the sector padding after
     * the stream is not part of it.
     */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && strm.avail_out == 0) {
        ret = 0;
    } else {
        ret = -EIO;
    }
    inflateEnd(&strm);
    return ret;
}

/* zstd frames, possibly several, until the cluster is complete. */
static int decompress_zstd(void *dest, size_t dest_len, const void *src,
                           size_t src_len)
{
    ZSTD_outBuffer out = { dest, dest_len, 0 };
    ZSTD_inBuffer in = { src, src_len, 0 };
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    int ret = 0;

    if (!dctx) {
        return -ENOMEM;
    }
    while (out.pos < out.size) {
        size_t last_in = in.pos;
        size_t r = ZSTD_decompressStream(dctx, &out, &in);

        if (ZSTD_isError(r)) {
            ret = -EIO;
            break;
        }
        if (out.pos < out.size && in.pos == last_in && r != 0) {
            /* no progress: the input ends before the cluster does */
            ret = -EIO;
            break;
        }
        if (in.pos == in.size && out.pos < out.size) {
            ret = -EIO;
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return ret;
}

int qcow2_decompress(int type, void *dest, size_t dest_len,
                     const void *src, size_t src_len)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB:
        return decompress_zlib(dest, dest_len, src, src_len);
    case QCOW2_COMPRESSION_ZSTD:
        return decompress_zstd(dest, dest_len, src, src_len);
    default:
        return -EIO;
    }
}
