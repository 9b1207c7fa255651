/*
 * A vhost-user back end (the device side of specs/vhost-user.rst), shared
 * by the plugins that serve virtio devices over a vhost-user socket.
 *
 * The library knows the protocol and the split virtqueue; it owns no
 * socket and no event loop.  Its user reads each message off the socket
 * (vu_msg_check() tells how big it is and whether it is well formed),
 * hands it with its descriptors to vu_dev_process_msg(), sends the reply
 * it returns, and serves the virtqueues the library starts and stops
 * through VuDevOps.
 *
 * Threads: vu_dev_process_msg() and the ops it calls run in one thread
 * (the control thread).  A virtqueue is touched by the control thread
 * only while it is stopped (ops->queue_stop() must not return before the
 * queue's thread has let go of it and every element it popped has been
 * pushed back); while it runs, vu_virtq_pop/push/notify are for its own
 * thread.  The call eventfd, which the front end replaces while queues
 * run (guest interrupt masking), is guarded by a lock of its own.
 *
 * A hostile front end: every message is checked for its size, fields and
 * descriptors, every guest address and length against the memory table,
 * every descriptor chain for loops and length.  A bad one makes
 * vu_dev_process_msg() or vu_virtq_pop() fail with a message; the user
 * then ends the connection (vu_dev_free()).  The library never touches
 * memory outside the regions the front end mapped for it.
 */
#ifndef BLOCKD_VHOST_USER_H
#define BLOCKD_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <glib.h>

/* --- wire format (specs/vhost-user.rst) ------------------------------------ */

enum {
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
};

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)

#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29

/* The payload of SET_VRING_KICK/CALL/ERR: the index and the no-fd bit. */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

/* Memory regions one SET_MEM_TABLE carries, and slots we keep. */
#define VHOST_USER_MAX_RAM_SLOTS 8
#define VU_MAX_MEM_SLOTS 32

/* A virtqueue's most descriptors (virtio's limit for a split ring). */
#define VU_QUEUE_MAX_SIZE 32768
/* The most virtqueues a device may have. */
#define VU_MAX_QUEUES 64
/* The largest config space (GET/SET_CONFIG). */
#define VU_MAX_CONFIG_SIZE 256
/* The descriptors one message may carry. */
#define VU_MAX_FDS 8

typedef struct VuMsgHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
} __attribute__((packed)) VuMsgHeader;

typedef struct VuVringState {
    uint32_t index;
    uint32_t num;
} __attribute__((packed)) VuVringState;

typedef struct VuVringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
} __attribute__((packed)) VuVringAddr;

typedef struct VuMemRegionDesc {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} __attribute__((packed)) VuMemRegionDesc;

typedef struct VuMemTableDesc {
    uint32_t nregions;
    uint32_t padding;
    VuMemRegionDesc regions[VHOST_USER_MAX_RAM_SLOTS];
} __attribute__((packed)) VuMemTableDesc;

typedef struct VuMemRegMsg {
    uint64_t padding;
    VuMemRegionDesc region;
} __attribute__((packed)) VuMemRegMsg;

typedef struct VuConfigMsg {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[VU_MAX_CONFIG_SIZE];
} __attribute__((packed)) VuConfigMsg;

#define VU_CONFIG_HDR_SIZE 12u

typedef struct VuInflightMsg {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
    uint32_t padding;       /* QEMU sends the C struct with its padding */
} __attribute__((packed)) VuInflightMsg;

/* The largest payload of a message the library accepts. */
#define VU_MSG_MAX_PAYLOAD ((uint32_t)sizeof(VuConfigMsg))

typedef struct VuMsg {
    VuMsgHeader hdr;
    union {
        uint64_t u64;
        VuVringState state;
        VuVringAddr addr;
        VuMemTableDesc memory;
        VuMemRegMsg memreg;
        VuConfigMsg config;
        VuInflightMsg inflight;
        uint8_t bytes[VU_MSG_MAX_PAYLOAD];
    } payload;
} __attribute__((packed)) VuMsg;

/*
 * Check a message header as soon as it is read: the version bits, the
 * reply bit (a front end never sends one) and the payload size, which
 * must not exceed what any request may carry.  false with @err set (a
 * sentence naming the request and what is wrong).
 */
bool vu_msg_check_header(const VuMsgHeader *hdr, char *err, size_t errlen);

/* The request's name for messages ("VHOST_USER_SET_MEM_TABLE"), or NULL. */
const char *vu_request_name(uint32_t request);

/* --- the device -------------------------------------------------------------- */

typedef struct VuDev VuDev;
typedef struct VuVirtq VuVirtq;

/*
 * One popped request: the descriptor chain's head and its buffers in the
 * back end's address space, the device-readable ones first (out) and then
 * the device-writable ones (in).  Allocated by vu_virtq_pop(); freed by
 * the caller (g_free) after vu_virtq_push().
 */
typedef struct VuElem {
    unsigned head;
    unsigned out_num;
    unsigned in_num;
    struct iovec *out_sg;
    struct iovec *in_sg;
    void *opaque;          /* the user's */
} VuElem;

typedef struct VuDevOps {
    /* The device's virtio feature bits (without the transport's). */
    uint64_t (*get_features)(VuDev *dev);
    /*
     * Fill @buf with @size bytes of the config space from @offset;
     * return false to refuse.
     */
    bool (*get_config)(VuDev *dev, uint8_t *buf, uint32_t offset,
                       uint32_t size);
    /*
     * The front end writes the config space (from the guest); return
     * false to refuse.  NULL: every write is refused.
     */
    bool (*set_config)(VuDev *dev, const uint8_t *data, uint32_t offset,
                       uint32_t size, uint32_t flags);
    /* Start serving queue @q (kick fd known; may be -1 for polling). */
    void (*queue_start)(VuDev *dev, unsigned q);
    /*
     * Stop serving queue @q: return only once its thread no longer
     * touches it and every popped element has been pushed.
     */
    void (*queue_stop)(VuDev *dev, unsigned q);
} VuDevOps;

/*
 * A device with @max_queues virtqueues (1..VU_MAX_QUEUES), extra
 * protocol features @proto_features (MQ, CONFIG, ...; REPLY_ACK and
 * CONFIGURE_MEM_SLOTS are the library's own).
 */
VuDev *vu_dev_new(unsigned max_queues, uint64_t proto_features,
                  const VuDevOps *ops, void *opaque);
/* Stop what runs (ops->queue_stop), unmap the memory, close every fd. */
void vu_dev_free(VuDev *dev);
void *vu_dev_get_opaque(VuDev *dev);
unsigned vu_dev_num_queues(VuDev *dev);
VuVirtq *vu_dev_get_queue(VuDev *dev, unsigned q);
/* The features the front end acked (SET_FEATURES). */
uint64_t vu_dev_acked_features(VuDev *dev);

/*
 * Process one message whose header passed vu_msg_check_header() and
 * whose payload (hdr.size bytes) follows it in @msg, with the @nfds
 * descriptors that came with it (the library takes them all, on success
 * and on failure).  Control thread.  Returns:
 *  1: a reply is in @reply (send hdr + hdr.size bytes);
 *  0: no reply;
 * -1: the message was bad or could not be honoured: @err says why, and
 *     the connection must end.
 */
int vu_dev_process_msg(VuDev *dev, const VuMsg *msg, int *fds, int nfds,
                       VuMsg *reply, char *err, size_t errlen);

/*
 * The descriptor to send along with the reply vu_dev_process_msg() just
 * made (GET_INFLIGHT_FD), or -1; the caller owns it.
 */
int vu_dev_take_reply_fd(VuDev *dev);

/*
 * For tests and fuzzing: map @size bytes of @fd as guest memory at guest
 * address @gpa and front-end address @uva, as SET_MEM_TABLE would.  Only
 * while every queue is stopped.  Takes @fd.
 */
bool vu_dev_add_region(VuDev *dev, uint64_t gpa, uint64_t size, uint64_t uva,
                       int fd, char *err, size_t errlen);

/* --- a virtqueue, in its own thread -------------------------------------- */

unsigned vu_virtq_index(VuVirtq *vq);
/* The kick eventfd (-1: none, poll). */
int vu_virtq_kick_fd(VuVirtq *vq);
/* Whether the ring is started and enabled (control thread). */
bool vu_virtq_running(VuVirtq *vq);

/*
 * The next available request, or NULL when there is none (*@err empty)
 * or the ring is broken (@err says how: the connection must end).  The
 * element's buffers point into guest memory and stay valid until it is
 * pushed.  @extra bytes of zeroed room are allocated after the element
 * for the caller (VuElem.opaque points there when @extra > 0).
 */
VuElem *vu_virtq_pop(VuVirtq *vq, size_t extra, char *err, size_t errlen);
/*
 * Whether requests wait to be popped (a cheap look at the available
 * index, for busy polling).
 */
bool vu_virtq_has_work(VuVirtq *vq);
/* Put @elem into the used ring with @len bytes written; does not free it. */
void vu_virtq_push(VuVirtq *vq, const VuElem *elem, uint32_t len);
/* Interrupt the guest if it wants to hear about the pushed requests. */
void vu_virtq_notify(VuVirtq *vq);
/*
 * With EVENT_IDX: ask to be kicked for requests after the ones popped;
 * returns true if more arrived meanwhile (pop again).  Without it: true if
 * requests are available.
 */
bool vu_virtq_enable_notification(VuVirtq *vq);
/*
 * Requests popped and not yet pushed.  With in-flight tracking
 * (INFLIGHT_SHMFD), the requests a previous back end left unfinished
 * are popped again first, in the order it had popped them.
 */
unsigned vu_virtq_inflight(VuVirtq *vq);

/* --- iovec helpers ------------------------------------------------------------ */

/* Copy up to @bytes from @iov starting @offset into @buf; returns copied. */
size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                     void *buf, size_t bytes);
/* Copy up to @bytes from @buf into @iov at @offset; returns copied. */
size_t vu_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                       const void *buf, size_t bytes);
size_t vu_iov_size(const struct iovec *iov, unsigned n);
/*
 * Drop @bytes from the front (@front) or the back of @iov (adjusting
 * *@n and the entries in place); returns bytes dropped.
 */
size_t vu_iov_discard(struct iovec **iov, unsigned *n, size_t bytes,
                      bool front);

#endif /* BLOCKD_VHOST_USER_H */
