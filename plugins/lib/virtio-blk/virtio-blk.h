/*
 * virtio-blk (virtio 1.2, 5.2): the device's feature bits, its config
 * space and the handling of one request, for every export that serves a
 * virtio-blk device (vhost-user-blk, VDUSE).  The transport hands over a
 * request as two iovec lists (device-readable, device-writable) pointing
 * into guest memory; the data moves between them and the node in place.
 */
#ifndef BLOCKD_VIRTIO_BLK_H
#define BLOCKD_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <blockd/blockd.h>

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_BARRIER 0x80000000u

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

#define VIRTIO_BLK_SECTOR_BITS 9
#define VIRTIO_BLK_ID_BYTES 20
/* QEMU's limits for one discard or write-zeroes segment, in sectors. */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS 32768u
#define VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS 32768u

/* The config space (little-endian; the fields up to what QEMU 7.2 reads). */
typedef struct VirtioBlkConfig {
    uint64_t capacity;
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors;
    uint32_t blk_size;
    uint8_t physical_block_exp;
    uint8_t alignment_offset;
    uint16_t min_io_size;
    uint32_t opt_io_size;
    uint8_t wce;
    uint8_t unused;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
    uint32_t max_secure_erase_sectors;
    uint32_t max_secure_erase_seg;
    uint32_t secure_erase_sector_alignment;
} __attribute__((packed)) VirtioBlkConfig;

/* One device: what every queue's requests share. */
typedef struct VirtioBlk {
    BdBlockBackend *blk;
    uint32_t blk_size;          /* logical block size, a power of 2 >= 512 */
    uint16_t num_queues;
    uint16_t queue_size;        /* the ring size the front end is told */
    bool writable;
    int wce;                    /* write cache enabled (atomic: any thread) */
    const char *serial;         /* GET_ID, at most 20 bytes used */
} VirtioBlk;

/* The device feature bits (qemu-storage-daemon 7.2's set). */
uint64_t virtio_blk_features(const VirtioBlk *vb);

/* Fill @cfg (the whole config space, capacity as the node is now). */
void virtio_blk_fill_config(VirtioBlk *vb, VirtioBlkConfig *cfg);

/*
 * A config-space write by the guest: only the wce byte is writable.
 * Returns false for anything else.
 */
bool virtio_blk_set_config(VirtioBlk *vb, const uint8_t *data,
                           uint32_t offset, uint32_t size);

/*
 * coroutine_fn: serve one request.  @out/@in are the request's buffers
 * (adjusted in place: the caller must not reuse them).  Returns the
 * number of bytes written into @in (data plus status), the used length
 * to report; 0 when the request has no room even for a status byte.
 */
bd_coroutine_fn
uint32_t virtio_blk_co_handle(VirtioBlk *vb, struct iovec *out,
                              unsigned out_num, struct iovec *in,
                              unsigned in_num);

#endif /* BLOCKD_VIRTIO_BLK_H */
