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

/*
 * Each thread keeps its decoder and resets it per cluster: setting up
 * zlib's inflate state and zstd's context costs more than decoding a
 * 64 KiB cluster.  Freed when the thread ends.
 */
static void free_zlib_stream(gpointer p)
{
    inflateEnd(p);
    g_free(p);
}

static GPrivate zlib_stream_key = G_PRIVATE_INIT(free_zlib_stream);

static void free_zstd_ctx(gpointer p)
{
    ZSTD_freeDCtx(p);
}

static GPrivate zstd_ctx_key = G_PRIVATE_INIT(free_zstd_ctx);

/* zlib as QEMU writes it: a raw deflate stream with a 4 KiB window. */
static int decompress_zlib(void *dest, size_t dest_len, const void *src,
                           size_t src_len)
{
    z_stream *strm = g_private_get(&zlib_stream_key);
    int ret;

    if (!strm) {
        strm = g_new0(z_stream, 1);
        if (inflateInit2(strm, -12) != Z_OK) {
            g_free(strm);
            return -EIO;
        }
        g_private_set(&zlib_stream_key, strm);
    } else if (inflateReset(strm) != Z_OK) {
        return -EIO;
    }
    strm->next_in = (Bytef *)src;
    strm->avail_in = src_len;
    strm->next_out = dest;
    strm->avail_out = dest_len;
    ret = inflate(strm, Z_FINISH);
    /*
     * Z_BUF_ERROR with a full output is fine: the sector padding after
     * the stream is not part of it.
     */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) &&
        strm->avail_out == 0) {
        return 0;
    }
    return -EIO;
}

/* zstd frames, possibly several, until the cluster is complete. */
static int decompress_zstd(void *dest, size_t dest_len, const void *src,
                           size_t src_len)
{
    ZSTD_outBuffer out = { dest, dest_len, 0 };
    ZSTD_inBuffer in = { src, src_len, 0 };
    ZSTD_DCtx *dctx = g_private_get(&zstd_ctx_key);
    int ret = 0;

    if (!dctx) {
        dctx = ZSTD_createDCtx();
        if (!dctx) {
            return -ENOMEM;
        }
        g_private_set(&zstd_ctx_key, dctx);
    } else {
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
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
