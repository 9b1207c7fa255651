/*
 * Split virtqueues (virtio 1.2, 2.7): walking a request's descriptor
 * chain into iovecs, returning it through the used ring, and interrupting
 * the guest (with VIRTIO_RING_F_EVENT_IDX when negotiated).
 *
 * The guest writes the rings while we read them: every field is read
 * once into a local before it is checked and used, so a value cannot
 * change between the check and the use.  A chain is bounded by the size
 * of the table it lives in (a loop ends there), an indirect table must
 * lie in one region and cannot hold another, and every buffer must lie
 * inside the memory table.  Little-endian hosts only (virtio 1.x rings
 * are little-endian; so is the x86-64 and aarch64 the daemon runs on).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vu-int.h"

G_STATIC_ASSERT(G_BYTE_ORDER == G_LITTLE_ENDIAN);

/* The most buffers one request may have (seg_max is far below). */
#define VU_MAX_IOV 4096

#define ERR(...) snprintf(err, errlen, __VA_ARGS__)

static bool has_feature(VuVirtq *vq, unsigned bit)
{
    return vq->dev->features & (1ull << bit);
}

static uint16_t load16(const uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store16(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static int cmp_counter(const void *a, const void *b, void *opaque)
{
    const VuDescStateSplit *d = opaque;
    uint64_t ca = d[*(const uint16_t *)a].counter;
    uint64_t cb = d[*(const uint16_t *)b].counter;

    /* Descending: the list is popped from its end, lowest counter first. */
    return ca < cb ? 1 : ca > cb ? -1 : 0;
}

/*
 * On a queue's start with in-flight tracking: what a previous back end
 * (killed, restarted) left unfinished is popped again first, in the order
 * it was popped; the available index resumes after it.  The region is
 * the front end's memory: everything read from it is checked.
 */
static bool vu_virtq_check_inflight(VuVirtq *vq, char *err, size_t errlen)
{
    VuQueueRegionSplit *r = vq->inflight_region;
    uint16_t used_idx;
    unsigned inuse = 0;

    g_clear_pointer(&vq->resubmit, g_free);
    vq->resubmit_num = 0;
    if (!r) {
        return true;
    }
    if (vq->num > vq->inflight_desc_num) {
        snprintf(err, errlen, "vring %u of %u descriptors is larger than "
                 "its in-flight buffer (%u)", vq->index, vq->num,
                 vq->inflight_desc_num);
        return false;
    }
    if (r->version == 0) {
        /* A new buffer: nothing was in flight. */
        r->version = 1;
        r->desc_num = vq->inflight_desc_num;
        r->used_idx = load16(&vq->used->idx);
        vq->counter = 0;
        return true;
    }
    used_idx = load16(&vq->used->idx);
    vq->used_idx = used_idx;
    if (r->used_idx != used_idx) {
        /* Killed between the used index and the region's: one request. */
        if (r->last_batch_head < vq->num) {
            r->desc[r->last_batch_head].inflight = 0;
        }
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        r->used_idx = used_idx;
    }
    vq->counter = 0;
    for (unsigned i = 0; i < vq->num; i++) {
        if (r->desc[i].inflight == 1) {
            inuse++;
            vq->counter = MAX(vq->counter, r->desc[i].counter + 1);
        }
    }
    vq->last_avail_idx = used_idx + inuse;
    if (inuse) {
        unsigned n = 0;

        vq->resubmit = g_new(uint16_t, inuse);
        for (unsigned i = 0; i < vq->num && n < inuse; i++) {
            if (r->desc[i].inflight == 1) {
                vq->resubmit[n++] = i;
            }
        }
        g_qsort_with_data(vq->resubmit, n, sizeof(uint16_t), cmp_counter,
                          r->desc);
        vq->resubmit_num = n;
    }
    return true;
}

bool vu_virtq_map_ring(VuVirtq *vq, char *err, size_t errlen)
{
    VuDev *dev = vq->dev;
    uint64_t num = vq->num;

    if (!num || !vq->addr_set) {
        snprintf(err, errlen, "vring %u started before its %s was set",
                 vq->index, !num ? "size" : "address");
        return false;
    }
    vq->desc = vu_uva_to_va(dev, vq->addr.desc_user_addr,
                            num * sizeof(VringDesc));
    vq->avail = vu_uva_to_va(dev, vq->addr.avail_user_addr, 6 + 2 * num);
    vq->used = vu_uva_to_va(dev, vq->addr.used_user_addr,
                            6 + sizeof(VringUsedElem) * num);
    if (!vq->desc || !vq->avail || !vq->used ||
        ((uintptr_t)vq->desc & 15) || ((uintptr_t)vq->avail & 1) ||
        ((uintptr_t)vq->used & 3)) {
        snprintf(err, errlen, "vring %u: descriptor table 0x%" PRIx64
                 ", available ring 0x%" PRIx64 " or used ring 0x%" PRIx64
                 " is misaligned or outside guest memory", vq->index,
                 vq->addr.desc_user_addr, vq->addr.avail_user_addr,
                 vq->addr.used_user_addr);
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
        return false;
    }
    vq->signalled_used_valid = false;
    return vu_virtq_check_inflight(vq, err, errlen);
}

unsigned vu_virtq_index(VuVirtq *vq)
{
    return vq->index;
}

int vu_virtq_kick_fd(VuVirtq *vq)
{
    return vq->kick_fd;
}

bool vu_virtq_running(VuVirtq *vq)
{
    return vq->running;
}

unsigned vu_virtq_inflight(VuVirtq *vq)
{
    return __atomic_load_n(&vq->inflight, __ATOMIC_ACQUIRE);
}

typedef struct IovList {
    struct iovec *iov;
    unsigned n;
    unsigned cap;
} IovList;

/* Map @len bytes at @gpa (several iovecs if regions are adjacent). */
static bool map_buffer(VuDev *dev, IovList *l, uint64_t gpa, uint32_t len)
{
    while (len > 0) {
        uint64_t got;
        void *p = vu_gpa_to_va(dev, gpa, len, &got);

        if (!p || l->n >= VU_MAX_IOV) {
            return false;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->iov = g_renew(struct iovec, l->iov, l->cap);
        }
        l->iov[l->n++] = (struct iovec) { .iov_base = p, .iov_len = got };
        gpa += got;
        len -= got;
    }
    return true;
}

static VuElem *pop_head(VuVirtq *vq, uint16_t head, bool fresh,
                        size_t extra, char *err, size_t errlen);

VuElem *vu_virtq_pop(VuVirtq *vq, size_t extra, char *err, size_t errlen)
{
    unsigned num = vq->num;
    uint16_t avail_idx, head;

    err[0] = '\0';
    if (!vq->running) {
        return NULL;
    }
    if (vq->resubmit_num > 0) {
        /* Left in flight by a previous back end: already counted. */
        head = vq->resubmit[--vq->resubmit_num];
        if (vq->resubmit_num == 0) {
            g_clear_pointer(&vq->resubmit, g_free);
        }
        return pop_head(vq, head, false, extra, err, errlen);
    }
    avail_idx = load16(&vq->avail->idx);
    if ((uint16_t)(avail_idx - vq->last_avail_idx) > num) {
        ERR("vring %u: the available index moved from %u to %u "
            "(a ring of %u)", vq->index, vq->last_avail_idx, avail_idx, num);
        return NULL;
    }
    if (avail_idx == vq->last_avail_idx) {
        return NULL;
    }
    head = __atomic_load_n(&vq->avail->ring[vq->last_avail_idx % num],
                           __ATOMIC_RELAXED);
    if (head >= num) {
        ERR("vring %u: head descriptor %u (a ring of %u)", vq->index, head,
            num);
        return NULL;
    }
    return pop_head(vq, head, true, extra, err, errlen);
}

/* Walk the chain of @head into an element; @fresh: from the avail ring. */
static VuElem *pop_head(VuVirtq *vq, uint16_t head, bool fresh, size_t extra,
                        char *err, size_t errlen)
{
    VuDev *dev = vq->dev;
    unsigned num = vq->num;
    const VringDesc *table;
    unsigned max, i, count = 0;
    bool indirect = false;
    IovList out = { 0 }, in = { 0 };
    VuElem *elem = NULL;
    size_t off;

    table = vq->desc;
    max = num;
    i = head;
    for (;;) {
        VringDesc d;

        memcpy(&d, &table[i], sizeof(d));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            uint64_t got;

            if (indirect || !has_feature(vq, VIRTIO_RING_F_INDIRECT_DESC) ||
                (d.flags & VRING_DESC_F_NEXT) || count > 0) {
                ERR("vring %u: an indirect descriptor inside a chain, "
                    "inside an indirect table or not negotiated", vq->index);
                goto fail;
            }
            if (d.len == 0 || d.len % sizeof(VringDesc) ||
                d.len / sizeof(VringDesc) > VU_QUEUE_MAX_SIZE) {
                ERR("vring %u: indirect table of %" PRIu32 " bytes",
                    vq->index, d.len);
                goto fail;
            }
            table = vu_gpa_to_va(dev, d.addr, d.len, &got);
            if (!table || got != d.len || ((uintptr_t)table & 7)) {
                ERR("vring %u: indirect table at 0x%" PRIx64 " of %" PRIu32
                    " bytes is outside guest memory or misaligned",
                    vq->index, d.addr, d.len);
                goto fail;
            }
            indirect = true;
            max = d.len / sizeof(VringDesc);
            i = 0;
            continue;
        }
        if (++count > max) {
            ERR("vring %u: the chain of descriptor %u is longer than its "
                "table (a loop)", vq->index, head);
            goto fail;
        }
        if (d.flags & VRING_DESC_F_WRITE) {
            if (!map_buffer(dev, &in, d.addr, d.len)) {
                goto bad_buffer;
            }
        } else {
            if (in.n > 0) {
                ERR("vring %u: a device-readable buffer after a writable "
                    "one in the chain of descriptor %u", vq->index, head);
                goto fail;
            }
            if (!map_buffer(dev, &out, d.addr, d.len)) {
                goto bad_buffer;
            }
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        i = d.next;
        if (i >= max) {
            ERR("vring %u: next descriptor %u (a table of %u)", vq->index, i,
                max);
            goto fail;
        }
        continue;
bad_buffer:
        ERR("vring %u: buffer at 0x%" PRIx64 " of %" PRIu32 " bytes is "
            "outside guest memory (or the chain has too many buffers)",
            vq->index, d.addr, d.len);
        goto fail;
    }

    off = (sizeof(VuElem) + extra + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
    elem = g_malloc0(off + (out.n + in.n) * sizeof(struct iovec));
    elem->head = head;
    elem->out_num = out.n;
    elem->in_num = in.n;
    elem->out_sg = (struct iovec *)((char *)elem + off);
    elem->in_sg = elem->out_sg + out.n;
    if (out.n) {
        memcpy(elem->out_sg, out.iov, out.n * sizeof(struct iovec));
    }
    if (in.n) {
        memcpy(elem->in_sg, in.iov, in.n * sizeof(struct iovec));
    }
    elem->opaque = extra ? (char *)elem + sizeof(VuElem) : NULL;
    if (fresh) {
        vq->last_avail_idx++;
        if (has_feature(vq, VIRTIO_RING_F_EVENT_IDX)) {
            /* avail_event: where the guest is to kick us next. */
            store16((uint16_t *)&vq->used->ring[num], vq->last_avail_idx);
        }
        if (vq->inflight_region) {
            VuDescStateSplit *d = &vq->inflight_region->desc[head];

            d->counter = vq->counter++;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            d->inflight = 1;
        }
    }
    __atomic_fetch_add(&vq->inflight, 1, __ATOMIC_RELEASE);
fail:
    g_free(out.iov);
    g_free(in.iov);
    return elem;
}

bool vu_virtq_has_work(VuVirtq *vq)
{
    return vq->running && (vq->resubmit_num > 0 ||
                           load16(&vq->avail->idx) != vq->last_avail_idx);
}

void vu_virtq_push(VuVirtq *vq, const VuElem *elem, uint32_t len)
{
    VringUsedElem *u = &vq->used->ring[vq->used_idx % vq->num];
    VuQueueRegionSplit *r = vq->inflight_region;

    if (r) {
        /* A batch of one: see "Inflight I/O tracking" in the spec. */
        r->desc[elem->head].next = r->last_batch_head;
        r->last_batch_head = elem->head;
    }
    u->id = elem->head;
    u->len = len;
    vq->used_idx++;
    store16(&vq->used->idx, vq->used_idx);
    if (r) {
        r->desc[elem->head].inflight = 0;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        r->used_idx = vq->used_idx;
    }
    __atomic_fetch_sub(&vq->inflight, 1, __ATOMIC_RELEASE);
}

static bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

void vu_virtq_notify(VuVirtq *vq)
{
    bool need;

    /* The used index must be visible before we read what the guest wants. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (has_feature(vq, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t old = vq->signalled_used, new = vq->used_idx;
        uint16_t event = load16(&vq->avail->ring[vq->num]);
        bool valid = vq->signalled_used_valid;

        vq->signalled_used = new;
        vq->signalled_used_valid = true;
        need = !valid || need_event(event, new, old);
    } else {
        need = !(load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (need) {
        g_mutex_lock(&vq->call_lock);
        if (vq->call_fd >= 0) {
            eventfd_write(vq->call_fd, 1);
        }
        g_mutex_unlock(&vq->call_lock);
    }
}

bool vu_virtq_enable_notification(VuVirtq *vq)
{
    if (!vq->running) {
        return false;
    }
    if (has_feature(vq, VIRTIO_RING_F_EVENT_IDX)) {
        store16((uint16_t *)&vq->used->ring[vq->num],
                load16(&vq->avail->idx));
    } else {
        store16(&vq->used->flags, 0);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load16(&vq->avail->idx) != vq->last_avail_idx;
}

/* --- iovecs ------------------------------------------------------------------- */

size_t vu_iov_size(const struct iovec *iov, unsigned n)
{
    size_t s = 0;

    for (unsigned i = 0; i < n; i++) {
        s += iov[i].iov_len;
    }
    return s;
}

size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                     void *buf, size_t bytes)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t c = MIN(iov[i].iov_len - offset, bytes - done);

        memcpy((char *)buf + done, (char *)iov[i].iov_base + offset, c);
        done += c;
        offset = 0;
    }
    return done;
}

size_t vu_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                       const void *buf, size_t bytes)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t c = MIN(iov[i].iov_len - offset, bytes - done);

        memcpy((char *)iov[i].iov_base + offset, (const char *)buf + done, c);
        done += c;
        offset = 0;
    }
    return done;
}

size_t vu_iov_discard(struct iovec **iov, unsigned *n, size_t bytes,
                      bool front)
{
    size_t done = 0;

    while (*n > 0 && done < bytes) {
        struct iovec *v = front ? &(*iov)[0] : &(*iov)[*n - 1];
        size_t c = MIN(v->iov_len, bytes - done);

        v->iov_len -= c;
        if (front) {
            v->iov_base = (char *)v->iov_base + c;
        }
        done += c;
        if (v->iov_len == 0) {
            if (front) {
                (*iov)++;
            }
            (*n)--;
        }
    }
    return done;
}
