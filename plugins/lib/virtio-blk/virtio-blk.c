/*
 * virtio-blk requests, as qemu-storage-daemon 7.2 serves them
 * (block/export/virtio-blk-handler.c): the same status for the same
 * request, the same limits in the config space.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "virtio-blk.h"

G_STATIC_ASSERT(offsetof(VirtioBlkConfig, wce) == 32);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, max_discard_sectors) == 36);
G_STATIC_ASSERT(offsetof(VirtioBlkConfig, write_zeroes_may_unmap) == 56);
G_STATIC_ASSERT(sizeof(VirtioBlkConfig) == 72);

typedef struct VirtioBlkOutHdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
} __attribute__((packed)) VirtioBlkOutHdr;

typedef struct VirtioBlkDiscardWz {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} __attribute__((packed)) VirtioBlkDiscardWz;

uint64_t virtio_blk_features(const VirtioBlk *vb)
{
    uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) |
                 (1ull << VIRTIO_BLK_F_TOPOLOGY) |
                 (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                 (1ull << VIRTIO_BLK_F_FLUSH) |
                 (1ull << VIRTIO_BLK_F_DISCARD) |
                 (1ull << VIRTIO_BLK_F_WRITE_ZEROES) |
                 (1ull << VIRTIO_BLK_F_CONFIG_WCE) |
                 (1ull << VIRTIO_BLK_F_MQ);

    if (!vb->writable) {
        f |= 1ull << VIRTIO_BLK_F_RO;
    }
    return f;
}

void virtio_blk_fill_config(VirtioBlk *vb, VirtioBlkConfig *cfg)
{
    int64_t len = bd_blk_getlength(vb->blk);

    memset(cfg, 0, sizeof(*cfg));
    cfg->capacity = GUINT64_TO_LE(len > 0 ? (uint64_t)len >>
                                  VIRTIO_BLK_SECTOR_BITS : 0);
    cfg->seg_max = GUINT32_TO_LE(vb->queue_size - 2);
    cfg->blk_size = GUINT32_TO_LE(vb->blk_size);
    cfg->min_io_size = GUINT16_TO_LE(1);
    cfg->opt_io_size = GUINT32_TO_LE(1);
    cfg->wce = __atomic_load_n(&vb->wce, __ATOMIC_RELAXED) ? 1 : 0;
    cfg->num_queues = GUINT16_TO_LE(vb->num_queues);
    cfg->max_discard_sectors = GUINT32_TO_LE(VIRTIO_BLK_MAX_DISCARD_SECTORS);
    cfg->max_discard_seg = GUINT32_TO_LE(1);
    cfg->discard_sector_alignment =
        GUINT32_TO_LE(vb->blk_size >> VIRTIO_BLK_SECTOR_BITS);
    cfg->max_write_zeroes_sectors =
        GUINT32_TO_LE(VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS);
    cfg->max_write_zeroes_seg = GUINT32_TO_LE(1);
}

bool virtio_blk_set_config(VirtioBlk *vb, const uint8_t *data,
                           uint32_t offset, uint32_t size)
{
    if (offset != offsetof(VirtioBlkConfig, wce) || size != 1) {
        return false;
    }
    __atomic_store_n(&vb->wce, data[0] ? 1 : 0, __ATOMIC_RELAXED);
    return true;
}

static size_t iov_size(const struct iovec *iov, unsigned n)
{
    size_t s = 0;

    for (unsigned i = 0; i < n; i++) {
        s += iov[i].iov_len;
    }
    return s;
}

/* Take @len bytes off the front of @iov into @buf; false if short. */
static bool iov_pull(struct iovec **iov, unsigned *n, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        size_t c;

        if (*n == 0) {
            return false;
        }
        c = MIN((*iov)->iov_len, len);
        memcpy(p, (*iov)->iov_base, c);
        p += c;
        len -= c;
        (*iov)->iov_base = (char *)(*iov)->iov_base + c;
        (*iov)->iov_len -= c;
        if ((*iov)->iov_len == 0) {
            (*iov)++;
            (*n)--;
        }
    }
    return true;
}

/* The last byte of @iov (the status byte), taken off it; NULL if empty. */
static uint8_t *iov_take_last_byte(struct iovec *iov, unsigned *n)
{
    while (*n > 0 && iov[*n - 1].iov_len == 0) {
        (*n)--;
    }
    if (*n == 0) {
        return NULL;
    }
    iov[*n - 1].iov_len--;
    return (uint8_t *)iov[*n - 1].iov_base + iov[*n - 1].iov_len;
}

/* Whether @bytes at @sector are whole logical blocks inside the node. */
static bool sect_range_ok(VirtioBlk *vb, uint64_t sector, uint64_t bytes)
{
    int64_t len = bd_blk_getlength(vb->blk);
    uint64_t off;

    if (sector > (UINT64_MAX >> VIRTIO_BLK_SECTOR_BITS) || len < 0) {
        return false;
    }
    off = sector << VIRTIO_BLK_SECTOR_BITS;
    if (off % vb->blk_size || bytes % vb->blk_size) {
        return false;
    }
    return off <= (uint64_t)len && bytes <= (uint64_t)len - off;
}

static uint8_t co_discard_wz(VirtioBlk *vb, uint32_t type, struct iovec *out,
                             unsigned out_num)
{
    VirtioBlkDiscardWz d;
    uint32_t flags, max;
    uint64_t sector, bytes;
    int ret;

    if (!iov_pull(&out, &out_num, &d, sizeof(d)) ||
        iov_size(out, out_num) != 0) {
        /* One segment exactly (max_*_seg is 1). */
        return VIRTIO_BLK_S_UNSUPP;
    }
    sector = GUINT64_FROM_LE(d.sector);
    flags = GUINT32_FROM_LE(d.flags);
    bytes = (uint64_t)GUINT32_FROM_LE(d.num_sectors) << VIRTIO_BLK_SECTOR_BITS;
    max = type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_MAX_DISCARD_SECTORS
                                       : VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS;
    if (GUINT32_FROM_LE(d.num_sectors) > max ||
        !sect_range_ok(vb, sector, bytes)) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (type == VIRTIO_BLK_T_DISCARD) {
        /* The unmap flag means nothing for a discard: reserved. */
        if (flags) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        ret = bd_blk_co_pdiscard(vb->blk, sector << VIRTIO_BLK_SECTOR_BITS,
                                 bytes);
    } else {
        BdRequestFlags rf = 0;

        if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        if (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
            rf |= BD_REQ_MAY_UNMAP;
        }
        if (!__atomic_load_n(&vb->wce, __ATOMIC_RELAXED)) {
            rf |= BD_REQ_FUA;
        }
        ret = bd_blk_co_pwrite_zeroes(vb->blk,
                                      sector << VIRTIO_BLK_SECTOR_BITS,
                                      bytes, rf);
    }
    return ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

uint32_t virtio_blk_co_handle(VirtioBlk *vb, struct iovec *out,
                              unsigned out_num, struct iovec *in,
                              unsigned in_num)
{
    VirtioBlkOutHdr hdr;
    uint8_t *status = iov_take_last_byte(in, &in_num);
    uint32_t written = 0;
    uint32_t type;
    uint8_t st;

    if (!status) {
        return 0;
    }
    if (!iov_pull(&out, &out_num, &hdr, sizeof(hdr))) {
        st = VIRTIO_BLK_S_IOERR;
        goto done;
    }
    type = GUINT32_FROM_LE(hdr.type) & ~VIRTIO_BLK_T_BARRIER;
    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool is_write = type == VIRTIO_BLK_T_OUT;
        uint64_t sector = GUINT64_FROM_LE(hdr.sector);
        BdIOVector qiov;
        int ret;

        if (is_write) {
            bd_iovec_init_external(&qiov, out, out_num);
        } else {
            bd_iovec_init_external(&qiov, in, in_num);
            /*
             * The used length counts the whole buffer, also when the
             * read fails, as qemu-storage-daemon's.
             */
            written = qiov.size;
        }
        if (!sect_range_ok(vb, sector, qiov.size) ||
            (is_write && !vb->writable)) {
            st = VIRTIO_BLK_S_IOERR;
            break;
        }
        if (is_write) {
            BdRequestFlags rf = 0;

            if (!__atomic_load_n(&vb->wce, __ATOMIC_RELAXED)) {
                rf |= BD_REQ_FUA;
            }
            ret = bd_blk_co_pwritev(vb->blk, sector << VIRTIO_BLK_SECTOR_BITS,
                                    qiov.size, &qiov, rf);
        } else {
            ret = bd_blk_co_preadv(vb->blk, sector << VIRTIO_BLK_SECTOR_BITS,
                                   qiov.size, &qiov, 0);
        }
        st = ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        st = bd_blk_co_flush(vb->blk) < 0 ? VIRTIO_BLK_S_IOERR
                                          : VIRTIO_BLK_S_OK;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES] = { 0 };
        size_t n = MIN(iov_size(in, in_num), sizeof(id));

        memcpy(id, vb->serial, MIN(strlen(vb->serial), sizeof(id)));
        for (unsigned i = 0, done = 0; i < in_num && done < n; i++) {
            size_t c = MIN(in[i].iov_len, n - done);

            memcpy(in[i].iov_base, id + done, c);
            done += c;
        }
        written = n;
        st = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        st = vb->writable ? co_discard_wz(vb, type, out, out_num)
                          : VIRTIO_BLK_S_IOERR;
        break;
    default:
        st = VIRTIO_BLK_S_UNSUPP;
        break;
    }
done:
    *status = st;
    return written + 1;
}
