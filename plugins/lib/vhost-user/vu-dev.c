/*
 * The vhost-user device: the front end's messages, checked and applied
 * (features, memory table, vring set-up, config space).
 *
 * Nothing a message carries is trusted: sizes must be exactly what the
 * request's payload is, indexes in range, descriptors present exactly
 * where the request takes one, memory regions must not wrap and must lie
 * inside the file they map (a mapping past its file's end would fault
 * later instead of failing now).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vu-int.h"

#define ERR(...) (snprintf(err, errlen, __VA_ARGS__), -1)

static const char *const request_names[] = {
    [VHOST_USER_GET_FEATURES] = "VHOST_USER_GET_FEATURES",
    [VHOST_USER_SET_FEATURES] = "VHOST_USER_SET_FEATURES",
    [VHOST_USER_SET_OWNER] = "VHOST_USER_SET_OWNER",
    [VHOST_USER_RESET_OWNER] = "VHOST_USER_RESET_OWNER",
    [VHOST_USER_SET_MEM_TABLE] = "VHOST_USER_SET_MEM_TABLE",
    [VHOST_USER_SET_LOG_BASE] = "VHOST_USER_SET_LOG_BASE",
    [VHOST_USER_SET_LOG_FD] = "VHOST_USER_SET_LOG_FD",
    [VHOST_USER_SET_VRING_NUM] = "VHOST_USER_SET_VRING_NUM",
    [VHOST_USER_SET_VRING_ADDR] = "VHOST_USER_SET_VRING_ADDR",
    [VHOST_USER_SET_VRING_BASE] = "VHOST_USER_SET_VRING_BASE",
    [VHOST_USER_GET_VRING_BASE] = "VHOST_USER_GET_VRING_BASE",
    [VHOST_USER_SET_VRING_KICK] = "VHOST_USER_SET_VRING_KICK",
    [VHOST_USER_SET_VRING_CALL] = "VHOST_USER_SET_VRING_CALL",
    [VHOST_USER_SET_VRING_ERR] = "VHOST_USER_SET_VRING_ERR",
    [VHOST_USER_GET_PROTOCOL_FEATURES] = "VHOST_USER_GET_PROTOCOL_FEATURES",
    [VHOST_USER_SET_PROTOCOL_FEATURES] = "VHOST_USER_SET_PROTOCOL_FEATURES",
    [VHOST_USER_GET_QUEUE_NUM] = "VHOST_USER_GET_QUEUE_NUM",
    [VHOST_USER_SET_VRING_ENABLE] = "VHOST_USER_SET_VRING_ENABLE",
    [VHOST_USER_GET_CONFIG] = "VHOST_USER_GET_CONFIG",
    [VHOST_USER_SET_CONFIG] = "VHOST_USER_SET_CONFIG",
    [VHOST_USER_GET_INFLIGHT_FD] = "VHOST_USER_GET_INFLIGHT_FD",
    [VHOST_USER_SET_INFLIGHT_FD] = "VHOST_USER_SET_INFLIGHT_FD",
    [VHOST_USER_RESET_DEVICE] = "VHOST_USER_RESET_DEVICE",
    [VHOST_USER_GET_MAX_MEM_SLOTS] = "VHOST_USER_GET_MAX_MEM_SLOTS",
    [VHOST_USER_ADD_MEM_REG] = "VHOST_USER_ADD_MEM_REG",
    [VHOST_USER_REM_MEM_REG] = "VHOST_USER_REM_MEM_REG",
};

const char *vu_request_name(uint32_t request)
{
    if (request < G_N_ELEMENTS(request_names)) {
        return request_names[request];
    }
    return NULL;
}

bool vu_msg_check_header(const VuMsgHeader *hdr, char *err, size_t errlen)
{
    const char *name = vu_request_name(hdr->request);
    char num[32];

    if (!name) {
        snprintf(num, sizeof(num), "request %" PRIu32, hdr->request);
        name = num;
    }
    if ((hdr->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        snprintf(err, errlen, "%s: protocol version %" PRIu32
                 " (expected %u)", name,
                 hdr->flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
        return false;
    }
    if (hdr->flags & VHOST_USER_REPLY_MASK) {
        snprintf(err, errlen, "%s: a reply from the front end", name);
        return false;
    }
    if (hdr->size > VU_MSG_MAX_PAYLOAD) {
        snprintf(err, errlen, "%s: payload of %" PRIu32
                 " bytes (at most %u)", name, hdr->size,
                 (unsigned)VU_MSG_MAX_PAYLOAD);
        return false;
    }
    return true;
}

/* --- memory ------------------------------------------------------------------ */

void *vu_gpa_to_va(VuDev *dev, uint64_t gpa, uint64_t len, uint64_t *plen)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        VuRegion *r = &dev->regions[i];

        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            uint64_t off = gpa - r->gpa;

            *plen = MIN(len, r->size - off);
            return (uint8_t *)r->mmap_addr + r->mmap_offset + off;
        }
    }
    return NULL;
}

void *vu_uva_to_va(VuDev *dev, uint64_t uva, uint64_t len)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        VuRegion *r = &dev->regions[i];

        if (uva >= r->uva && uva - r->uva < r->size &&
            len <= r->size - (uva - r->uva)) {
            return (uint8_t *)r->mmap_addr + r->mmap_offset + (uva - r->uva);
        }
    }
    return NULL;
}

static void region_unmap(VuRegion *r)
{
    if (r->mmap_addr) {
        munmap(r->mmap_addr, r->mmap_size);
    }
    memset(r, 0, sizeof(*r));
}

/* Map one region from @fd (taken); false with @err. */
static bool region_map(VuDev *dev, const VuMemRegionDesc *d, int fd,
                       char *err, size_t errlen)
{
    VuRegion *r;
    struct stat st;
    uint64_t end;
    void *p;

    if (dev->nregions >= VU_MAX_MEM_SLOTS) {
        snprintf(err, errlen, "more than %d memory regions", VU_MAX_MEM_SLOTS);
        goto fail;
    }
    if (d->memory_size == 0 ||
        d->guest_phys_addr + d->memory_size < d->guest_phys_addr ||
        d->userspace_addr + d->memory_size < d->userspace_addr ||
        d->mmap_offset + d->memory_size < d->mmap_offset ||
        d->mmap_offset + d->memory_size > (uint64_t)SIZE_MAX / 2) {
        snprintf(err, errlen, "memory region at guest address 0x%" PRIx64
                 " of 0x%" PRIx64 " bytes (mmap offset 0x%" PRIx64
                 ") is empty or wraps", d->guest_phys_addr, d->memory_size,
                 d->mmap_offset);
        goto fail;
    }
    end = d->mmap_offset + d->memory_size;
    for (unsigned i = 0; i < dev->nregions; i++) {
        VuRegion *o = &dev->regions[i];

        if (d->guest_phys_addr < o->gpa + o->size &&
            o->gpa < d->guest_phys_addr + d->memory_size) {
            snprintf(err, errlen, "memory region at guest address 0x%" PRIx64
                     " overlaps another", d->guest_phys_addr);
            goto fail;
        }
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size < end) {
        snprintf(err, errlen, "memory region at guest address 0x%" PRIx64
                 ": its descriptor is not a file of at least 0x%" PRIx64
                 " bytes", d->guest_phys_addr, end);
        goto fail;
    }
    p = mmap(NULL, end, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
             fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "memory region at guest address 0x%" PRIx64
                 ": mmap: %s", d->guest_phys_addr, g_strerror(errno));
        goto fail;
    }
    close(fd);
    r = &dev->regions[dev->nregions++];
    *r = (VuRegion) {
        .gpa = d->guest_phys_addr, .size = d->memory_size,
        .uva = d->userspace_addr, .mmap_offset = d->mmap_offset,
        .mmap_addr = p, .mmap_size = end,
    };
    return true;
fail:
    close(fd);
    return false;
}

bool vu_dev_add_region(VuDev *dev, uint64_t gpa, uint64_t size, uint64_t uva,
                       int fd, char *err, size_t errlen)
{
    VuMemRegionDesc d = {
        .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = uva,
    };

    return region_map(dev, &d, fd, err, errlen);
}

/* --- queues ---------------------------------------------------------------------- */

static void vq_close_fds(VuVirtq *vq)
{
    if (vq->kick_fd >= 0) {
        close(vq->kick_fd);
        vq->kick_fd = -1;
    }
    if (vq->err_fd >= 0) {
        close(vq->err_fd);
        vq->err_fd = -1;
    }
    g_mutex_lock(&vq->call_lock);
    if (vq->call_fd >= 0) {
        close(vq->call_fd);
        vq->call_fd = -1;
    }
    g_mutex_unlock(&vq->call_lock);
}

static void vq_stop(VuDev *dev, VuVirtq *vq)
{
    if (vq->running) {
        dev->ops->queue_stop(dev, vq->index);
        vq->running = false;
    }
}

/* Start or stop @vq as its state asks; -1 with @err if it cannot start. */
static int vq_update(VuDev *dev, VuVirtq *vq, char *err, size_t errlen)
{
    bool want = vq->started && vq->enabled;

    if (want && !vq->running) {
        if (!vu_virtq_map_ring(vq, err, errlen)) {
            return -1;
        }
        vq->running = true;
        dev->ops->queue_start(dev, vq->index);
    } else if (!want) {
        vq_stop(dev, vq);
    }
    return 0;
}

/* Stop every running queue; @was gets which ran. */
static void stop_all(VuDev *dev, bool *was)
{
    for (unsigned i = 0; i < dev->max_queues; i++) {
        was[i] = dev->vqs[i].running;
        vq_stop(dev, &dev->vqs[i]);
    }
}

static int restart_all(VuDev *dev, char *err, size_t errlen)
{
    for (unsigned i = 0; i < dev->max_queues; i++) {
        if (vq_update(dev, &dev->vqs[i], err, errlen) < 0) {
            return -1;
        }
    }
    return 0;
}

static void reset_queue(VuVirtq *vq)
{
    vq_close_fds(vq);
    vq->num = 0;
    vq->addr_set = false;
    memset(&vq->addr, 0, sizeof(vq->addr));
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    vq->last_avail_idx = vq->used_idx = 0;
    vq->signalled_used_valid = false;
    vq->started = false;
    vq->enabled = false;
}

static void inflight_unmap(VuDev *dev)
{
    for (unsigned i = 0; i < dev->max_queues; i++) {
        dev->vqs[i].inflight_region = NULL;
        g_clear_pointer(&dev->vqs[i].resubmit, g_free);
        dev->vqs[i].resubmit_num = 0;
    }
    if (dev->inflight_addr) {
        munmap(dev->inflight_addr, dev->inflight_size);
        dev->inflight_addr = NULL;
        dev->inflight_size = 0;
    }
}

static void reset_device(VuDev *dev)
{
    bool was[VU_MAX_QUEUES];

    stop_all(dev, was);
    for (unsigned i = 0; i < dev->max_queues; i++) {
        reset_queue(&dev->vqs[i]);
    }
    inflight_unmap(dev);
    dev->features = 0;
    dev->proto_features = 0;
}

VuDev *vu_dev_new(unsigned max_queues, uint64_t proto_features,
                  const VuDevOps *ops, void *opaque)
{
    VuDev *dev;

    g_assert(max_queues >= 1 && max_queues <= VU_MAX_QUEUES);
    dev = g_new0(VuDev, 1);
    dev->ops = ops;
    dev->opaque = opaque;
    dev->max_queues = max_queues;
    dev->proto_offered = proto_features |
        (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
        (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
    dev->vqs = g_new0(VuVirtq, max_queues);
    dev->reply_fd = -1;
    for (unsigned i = 0; i < max_queues; i++) {
        VuVirtq *vq = &dev->vqs[i];

        vq->dev = dev;
        vq->index = i;
        vq->kick_fd = vq->call_fd = vq->err_fd = -1;
        g_mutex_init(&vq->call_lock);
    }
    return dev;
}

void vu_dev_free(VuDev *dev)
{
    if (!dev) {
        return;
    }
    reset_device(dev);
    for (unsigned i = 0; i < dev->max_queues; i++) {
        g_mutex_clear(&dev->vqs[i].call_lock);
    }
    for (unsigned i = 0; i < dev->nregions; i++) {
        region_unmap(&dev->regions[i]);
    }
    if (dev->reply_fd >= 0) {
        close(dev->reply_fd);
    }
    g_free(dev->vqs);
    g_free(dev);
}

int vu_dev_take_reply_fd(VuDev *dev)
{
    int fd = dev->reply_fd;

    dev->reply_fd = -1;
    return fd;
}

void *vu_dev_get_opaque(VuDev *dev)
{
    return dev->opaque;
}

unsigned vu_dev_num_queues(VuDev *dev)
{
    return dev->max_queues;
}

VuVirtq *vu_dev_get_queue(VuDev *dev, unsigned q)
{
    return q < dev->max_queues ? &dev->vqs[q] : NULL;
}

uint64_t vu_dev_acked_features(VuDev *dev)
{
    return dev->features;
}

static uint64_t offered_features(VuDev *dev)
{
    return dev->ops->get_features(dev) |
        (1ull << VIRTIO_F_VERSION_1) |
        (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
        (1ull << VIRTIO_RING_F_EVENT_IDX) |
        (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

/* --- messages ---------------------------------------------------------------- */

/* How many descriptors @request may come with: [min, max]. */
static void fds_expected(const VuMsg *msg, int *min, int *max)
{
    *min = *max = 0;
    switch (msg->hdr.request) {
    case VHOST_USER_SET_MEM_TABLE:
        if (msg->hdr.size >= 8 &&
            msg->payload.memory.nregions <= VHOST_USER_MAX_RAM_SLOTS &&
            msg->hdr.size == 8 + msg->payload.memory.nregions *
                             sizeof(VuMemRegionDesc)) {
            *min = *max = msg->payload.memory.nregions;
        } else {
            /* A size error, reported by the request's own check. */
            *max = VU_MAX_FDS;
        }
        break;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        if (msg->hdr.size == 8) {
            *min = *max =
                (msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
        }
        break;
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_SET_INFLIGHT_FD:
        *min = *max = 1;
        break;
    case VHOST_USER_REM_MEM_REG:
        /* QEMU 7.2 sends the region's descriptor along; it is not needed. */
        *max = 1;
        break;
    }
}

/* The payload size @request must have, or -1 for one checked later. */
static int payload_size(uint32_t request)
{
    switch (request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        return 0;
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return 8;
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
        return sizeof(VuVringState);
    case VHOST_USER_SET_VRING_ADDR:
        return sizeof(VuVringAddr);
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_REM_MEM_REG:
        return sizeof(VuMemRegMsg);
    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_SET_INFLIGHT_FD:
        return sizeof(VuInflightMsg);
    default:
        return -1;
    }
}

static int take_fd(int *fds, int nfds, int i)
{
    int fd;

    if (i >= nfds) {
        return -1;
    }
    fd = fds[i];
    fds[i] = -1;
    return fd;
}

static int process(VuDev *dev, const VuMsg *msg, int *fds, int nfds,
                   VuMsg *reply, char *err, size_t errlen)
{
    const char *name = vu_request_name(msg->hdr.request);
    uint32_t size = msg->hdr.size;
    int want = payload_size(msg->hdr.request);
    int fmin, fmax;
    VuVirtq *vq = NULL;
    bool was[VU_MAX_QUEUES];

    if (!name) {
        return ERR("unknown request %" PRIu32, msg->hdr.request);
    }
    if (want >= 0 && size != (uint32_t)want) {
        return ERR("%s with a payload of %" PRIu32 " bytes (expected %d)",
                   name, size, want);
    }

    /* The vring index of the requests that name one. */
    switch (msg->hdr.request) {
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
    case VHOST_USER_SET_VRING_ADDR: {
        uint32_t idx = msg->payload.state.index;

        if (idx >= dev->max_queues) {
            return ERR("%s for vring %" PRIu32 " (the device has %u)", name,
                       idx, dev->max_queues);
        }
        vq = &dev->vqs[idx];
        break;
    }
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR: {
        uint64_t v = msg->payload.u64;
        uint64_t idx = v & VHOST_USER_VRING_IDX_MASK;

        if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK |
                            VHOST_USER_VRING_NOFD_MASK)) {
            return ERR("%s with unknown bits 0x%" PRIx64, name, v);
        }
        if (idx >= dev->max_queues) {
            return ERR("%s for vring %" PRIu64 " (the device has %u)", name,
                       idx, dev->max_queues);
        }
        vq = &dev->vqs[idx];
        break;
    }
    }

    fds_expected(msg, &fmin, &fmax);
    if (nfds < fmin || nfds > fmax) {
        if (fmin == fmax) {
            return ERR("%s with %d file descriptors (expected %d)", name,
                       nfds, fmin);
        }
        return ERR("%s with %d file descriptors (expected %d to %d)", name,
                   nfds, fmin, fmax);
    }

    switch (msg->hdr.request) {
    case VHOST_USER_GET_FEATURES:
        reply->payload.u64 = offered_features(dev);
        reply->hdr.size = 8;
        return 1;
    case VHOST_USER_SET_FEATURES: {
        uint64_t f = msg->payload.u64;

        if (f & ~offered_features(dev)) {
            return ERR("%s acks features 0x%" PRIx64 " that were not offered",
                       name, f & ~offered_features(dev));
        }
        if (dev->features != f) {
            /* The ring layout (EVENT_IDX) may change: stop, then restart. */
            stop_all(dev, was);
            dev->features = f;
            if (!(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
                /* Without protocol features a ring runs once kicked. */
                for (unsigned i = 0; i < dev->max_queues; i++) {
                    dev->vqs[i].enabled = true;
                }
            }
            return restart_all(dev, err, errlen);
        }
        return 0;
    }
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        reply->payload.u64 = dev->proto_offered;
        reply->hdr.size = 8;
        return 1;
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        if (msg->payload.u64 & ~dev->proto_offered) {
            return ERR("%s acks protocol features 0x%" PRIx64
                       " that were not offered", name,
                       msg->payload.u64 & ~dev->proto_offered);
        }
        dev->proto_features = msg->payload.u64;
        return 0;
    case VHOST_USER_SET_OWNER:
        dev->owner = true;
        return 0;
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
        reset_device(dev);
        return 0;
    case VHOST_USER_GET_QUEUE_NUM:
        reply->payload.u64 = dev->max_queues;
        reply->hdr.size = 8;
        return 1;
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        reply->payload.u64 = VU_MAX_MEM_SLOTS;
        reply->hdr.size = 8;
        return 1;

    case VHOST_USER_SET_MEM_TABLE: {
        uint32_t n;

        if (size < 8) {
            return ERR("%s with a payload of %" PRIu32 " bytes", name, size);
        }
        n = msg->payload.memory.nregions;
        if (n > VHOST_USER_MAX_RAM_SLOTS ||
            size != 8 + n * sizeof(VuMemRegionDesc)) {
            return ERR("%s with %" PRIu32 " regions in %" PRIu32 " bytes",
                       name, n, size);
        }
        stop_all(dev, was);
        for (unsigned i = 0; i < dev->nregions; i++) {
            region_unmap(&dev->regions[i]);
        }
        dev->nregions = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!region_map(dev, &msg->payload.memory.regions[i],
                            take_fd(fds, nfds, i), err, errlen)) {
                return -1;
            }
        }
        return restart_all(dev, err, errlen);
    }
    case VHOST_USER_ADD_MEM_REG:
        stop_all(dev, was);
        if (!region_map(dev, &msg->payload.memreg.region,
                        take_fd(fds, nfds, 0), err, errlen)) {
            return -1;
        }
        return restart_all(dev, err, errlen);
    case VHOST_USER_REM_MEM_REG: {
        const VuMemRegionDesc *d = &msg->payload.memreg.region;

        for (unsigned i = 0; i < dev->nregions; i++) {
            VuRegion *r = &dev->regions[i];

            if (r->gpa == d->guest_phys_addr && r->size == d->memory_size) {
                stop_all(dev, was);
                region_unmap(r);
                dev->regions[i] = dev->regions[--dev->nregions];
                memset(&dev->regions[dev->nregions], 0, sizeof(VuRegion));
                /* A ring in the removed region fails to start: an error. */
                return restart_all(dev, err, errlen);
            }
        }
        return ERR("%s for guest address 0x%" PRIx64
                   ", which no region starts at", name, d->guest_phys_addr);
    }

    case VHOST_USER_SET_VRING_NUM: {
        uint32_t num = msg->payload.state.num;

        if (vq->running) {
            return ERR("%s for vring %u while it runs", name, vq->index);
        }
        if (num == 0 || num > VU_QUEUE_MAX_SIZE || (num & (num - 1))) {
            return ERR("%s: vring %u of %" PRIu32 " descriptors "
                       "(a power of 2 up to %d)", name, vq->index, num,
                       VU_QUEUE_MAX_SIZE);
        }
        vq->num = num;
        return 0;
    }
    case VHOST_USER_SET_VRING_ADDR: {
        bool running = vq->running;

        vq_stop(dev, vq);
        vq->addr = msg->payload.addr;
        vq->addr_set = true;
        if (running) {
            return vq_update(dev, vq, err, errlen);
        }
        return 0;
    }
    case VHOST_USER_SET_VRING_BASE:
        if (vq->running) {
            return ERR("%s for vring %u while it runs", name, vq->index);
        }
        if (msg->payload.state.num > UINT16_MAX) {
            return ERR("%s: index %" PRIu32 " for vring %u", name,
                       msg->payload.state.num, vq->index);
        }
        vq->last_avail_idx = vq->used_idx = msg->payload.state.num;
        vq->signalled_used_valid = false;
        return 0;
    case VHOST_USER_GET_VRING_BASE:
        /* Stops the ring; the requests in flight finish first. */
        vq_stop(dev, vq);
        vq->started = false;
        vq_close_fds(vq);
        reply->payload.state.index = vq->index;
        reply->payload.state.num = vq->last_avail_idx;
        reply->hdr.size = sizeof(VuVringState);
        return 1;
    case VHOST_USER_SET_VRING_KICK: {
        if (msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) {
            return ERR("%s without a descriptor for vring %u: polling is "
                       "not supported", name, vq->index);
        }
        vq_stop(dev, vq);
        if (vq->kick_fd >= 0) {
            close(vq->kick_fd);
        }
        vq->kick_fd = take_fd(fds, nfds, 0);
        vq->started = true;
        if (!(dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
            vq->enabled = true;
        }
        return vq_update(dev, vq, err, errlen);
    }
    case VHOST_USER_SET_VRING_CALL: {
        int fd = take_fd(fds, nfds, 0), old;

        g_mutex_lock(&vq->call_lock);
        old = vq->call_fd;
        vq->call_fd = fd;
        g_mutex_unlock(&vq->call_lock);
        if (old >= 0) {
            close(old);
        }
        return 0;
    }
    case VHOST_USER_SET_VRING_ERR:
        if (vq->err_fd >= 0) {
            close(vq->err_fd);
        }
        vq->err_fd = take_fd(fds, nfds, 0);
        return 0;
    case VHOST_USER_SET_VRING_ENABLE:
        if (msg->payload.state.num > 1) {
            return ERR("%s: %" PRIu32 " for vring %u (0 or 1)", name,
                       msg->payload.state.num, vq->index);
        }
        vq->enabled = msg->payload.state.num;
        return vq_update(dev, vq, err, errlen);

    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_SET_INFLIGHT_FD: {
        const VuInflightMsg *in = &msg->payload.inflight;
        uint64_t qsz = VU_INFLIGHT_QUEUE_SIZE(in->queue_size);
        uint64_t need = qsz * in->num_queues;

        if (!(dev->proto_features &
              (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))) {
            return ERR("%s without the INFLIGHT_SHMFD protocol feature",
                       name);
        }
        if (in->num_queues == 0 || in->num_queues > dev->max_queues ||
            in->queue_size == 0 || in->queue_size > VU_QUEUE_MAX_SIZE / 2) {
            return ERR("%s for %u queues of %u descriptors (the device has "
                       "%u queues)", name, in->num_queues, in->queue_size,
                       dev->max_queues);
        }
        if (msg->hdr.request == VHOST_USER_GET_INFLIGHT_FD) {
            /* A new zeroed buffer the front end keeps across restarts. */
            int fd = memfd_create("vhost-user-inflight",
                                  MFD_CLOEXEC | MFD_ALLOW_SEALING);

            if (fd < 0 || ftruncate(fd, need) < 0) {
                if (fd >= 0) {
                    close(fd);
                }
                return ERR("%s: cannot make the buffer: %s", name,
                           g_strerror(errno));
            }
            /* Its size is fixed: a later mapping cannot fault past it. */
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
            if (dev->reply_fd >= 0) {
                close(dev->reply_fd);
            }
            dev->reply_fd = fd;
            reply->payload.inflight = (VuInflightMsg) {
                .mmap_size = need, .mmap_offset = 0,
                .num_queues = in->num_queues, .queue_size = in->queue_size,
            };
            reply->hdr.size = sizeof(VuInflightMsg);
            return 1;
        } else {
            int fd = take_fd(fds, nfds, 0);
            struct stat st;
            void *p;

            if (in->mmap_size < need || in->mmap_offset > (1ull << 40) ||
                in->mmap_offset % 64 ||
                in->mmap_size > (1ull << 30) || fstat(fd, &st) < 0 ||
                !S_ISREG(st.st_mode) ||
                (uint64_t)st.st_size < in->mmap_offset + in->mmap_size) {
                close(fd);
                return ERR("%s: a buffer of %" PRIu64 " bytes at offset %"
                           PRIu64 " for %u queues of %u descriptors does "
                           "not fit, is misaligned or its file is smaller",
                           name,
                           in->mmap_size, in->mmap_offset, in->num_queues,
                           in->queue_size);
            }
            p = mmap(NULL, in->mmap_offset + in->mmap_size,
                     PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (p == MAP_FAILED) {
                return ERR("%s: mmap: %s", name, g_strerror(errno));
            }
            stop_all(dev, was);
            inflight_unmap(dev);
            dev->inflight_addr = p;
            dev->inflight_size = in->mmap_offset + in->mmap_size;
            for (unsigned i = 0; i < in->num_queues; i++) {
                dev->vqs[i].inflight_region = (VuQueueRegionSplit *)
                    ((uint8_t *)p + in->mmap_offset + i * qsz);
                dev->vqs[i].inflight_desc_num = in->queue_size;
            }
            return restart_all(dev, err, errlen);
        }
    }
    case VHOST_USER_GET_CONFIG:
    case VHOST_USER_SET_CONFIG: {
        const VuConfigMsg *c = &msg->payload.config;

        if (size < VU_CONFIG_HDR_SIZE || c->size > VU_MAX_CONFIG_SIZE ||
            size != VU_CONFIG_HDR_SIZE + c->size ||
            c->offset > VU_MAX_CONFIG_SIZE ||
            c->offset + c->size > VU_MAX_CONFIG_SIZE) {
            return ERR("%s with a payload of %" PRIu32 " bytes for %" PRIu32
                       " bytes at offset %" PRIu32, name, size,
                       size >= VU_CONFIG_HDR_SIZE ? c->size : 0,
                       size >= VU_CONFIG_HDR_SIZE ? c->offset : 0);
        }
        if (msg->hdr.request == VHOST_USER_GET_CONFIG) {
            reply->payload.config.offset = c->offset;
            reply->payload.config.size = c->size;
            reply->payload.config.flags = c->flags;
            if (dev->ops->get_config(dev, reply->payload.config.region,
                                     c->offset, c->size)) {
                reply->hdr.size = size;
            } else {
                /* An empty reply tells the front end it failed. */
                reply->hdr.size = 0;
            }
            return 1;
        }
        if (!dev->ops->set_config ||
            !dev->ops->set_config(dev, c->region, c->offset, c->size,
                                  c->flags)) {
            return ERR("%s of %" PRIu32 " bytes at offset %" PRIu32
                       " is refused", name, c->size, c->offset);
        }
        return 0;
    }
    default:
        return ERR("%s is not supported", name);
    }
}

int vu_dev_process_msg(VuDev *dev, const VuMsg *msg, int *fds, int nfds,
                       VuMsg *reply, char *err, size_t errlen)
{
    int ret;

    err[0] = '\0';
    memset(&reply->hdr, 0, sizeof(reply->hdr));
    reply->hdr.request = msg->hdr.request;
    reply->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    ret = process(dev, msg, fds, nfds, reply, err, errlen);
    for (int i = 0; i < nfds; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    if (ret == 0 && (msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
        (dev->proto_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
        reply->payload.u64 = 0;
        reply->hdr.size = 8;
        ret = 1;
    }
    return ret;
}
