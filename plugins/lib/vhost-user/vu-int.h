/*
 * The vhost-user library's internals: the memory table, the virtqueues
 * and the device, shared by vu-dev.c (messages) and vu-virtq.c (rings).
 */
#ifndef BLOCKD_VU_INT_H
#define BLOCKD_VU_INT_H

#include "vhost-user.h"

/* One guest memory region, mapped into the back end. */
typedef struct VuRegion {
    uint64_t gpa;           /* guest physical address */
    uint64_t size;
    uint64_t uva;           /* the front end's address of it */
    uint64_t mmap_offset;   /* where it starts in the mapping */
    void *mmap_addr;        /* the mapping (mmap_offset + size bytes) */
    uint64_t mmap_size;
} VuRegion;

/* The split ring's structures (virtio 1.2, 2.7). */
typedef struct VringDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VringDesc;

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

typedef struct VringAvail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
} VringAvail;

typedef struct VringUsedElem {
    uint32_t id;
    uint32_t len;
} VringUsedElem;

typedef struct VringUsed {
    uint16_t flags;
    uint16_t idx;
    VringUsedElem ring[];
} VringUsed;

/* The in-flight tracking region of a split queue (specs/vhost-user.rst). */
typedef struct VuDescStateSplit {
    uint8_t inflight;
    uint8_t padding[5];
    uint16_t next;
    uint64_t counter;
} VuDescStateSplit;

typedef struct VuQueueRegionSplit {
    uint64_t features;
    uint16_t version;
    uint16_t desc_num;
    uint16_t last_batch_head;
    uint16_t used_idx;
    VuDescStateSplit desc[];
} VuQueueRegionSplit;

/* One queue's share of the in-flight buffer for @qsize descriptors. */
#define VU_INFLIGHT_QUEUE_SIZE(qsize) \
    (((uint64_t)sizeof(VuQueueRegionSplit) + \
      (uint64_t)sizeof(VuDescStateSplit) * (qsize) + 63) & ~(uint64_t)63)

struct VuVirtq {
    VuDev *dev;
    unsigned index;
    unsigned num;               /* SET_VRING_NUM; 0: not set */
    VuVringAddr addr;           /* SET_VRING_ADDR, as received */
    bool addr_set;
    VringDesc *desc;            /* translated; valid while started */
    VringAvail *avail;
    VringUsed *used;
    uint16_t last_avail_idx;
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_used_valid;
    int kick_fd;
    int err_fd;
    GMutex call_lock;           /* guards call_fd */
    int call_fd;
    bool started;               /* kick fd given, ring set up */
    bool enabled;               /* SET_VRING_ENABLE (or no protocol features) */
    bool running;               /* ops->queue_start() called */
    unsigned inflight;          /* popped, not pushed: the queue's thread */
    VuQueueRegionSplit *inflight_region;    /* NULL: no tracking */
    uint16_t inflight_desc_num;
    uint64_t counter;           /* next DescStateSplit.counter */
    uint16_t *resubmit;         /* heads to pop again, first last */
    unsigned resubmit_num;
};

struct VuDev {
    const VuDevOps *ops;
    void *opaque;
    unsigned max_queues;
    uint64_t proto_offered;
    uint64_t features;          /* acked */
    uint64_t proto_features;    /* acked */
    bool owner;
    VuRegion regions[VU_MAX_MEM_SLOTS];
    unsigned nregions;
    VuVirtq *vqs;
    void *inflight_addr;        /* SET_INFLIGHT_FD's mapping */
    uint64_t inflight_size;
    int reply_fd;               /* a descriptor to send with the reply */
};

/* Guest physical address to pointer for @len bytes in one region, or NULL. */
void *vu_gpa_to_va(VuDev *dev, uint64_t gpa, uint64_t len, uint64_t *plen);
/* Front-end address to pointer for @len bytes, or NULL. */
void *vu_uva_to_va(VuDev *dev, uint64_t uva, uint64_t len);
/*
 * Translate the ring's addresses and, with in-flight tracking, find the
 * requests to submit again; false with @err when they do not fit.
 */
bool vu_virtq_map_ring(VuVirtq *vq, char *err, size_t errlen);

#endif /* BLOCKD_VU_INT_H */
