/*
 * block-file: aio=native, Linux AIO (libaio) on an O_DIRECT descriptor.
 *
 * Requests queued by coroutines during one loop iteration are handed to
 * the kernel with one io_submit() at the end of that iteration (a bottom
 * half), or earlier when aio-max-batch of them are waiting.  Completions
 * signal an eventfd watched by the context; they are read straight from
 * the completion ring the kernel shares with us, which also lets the
 * context's adaptive polling find them without a system call.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <libaio.h>

#include "file-aio.h"

/* io_setup() size: the most requests one instance has in the kernel. */
#define NATIVE_MAX_EVENTS 1024
/* Requests submitted at once when aio-max-batch is not set. */
#define NATIVE_DEFAULT_MAX_BATCH 32
/* Completions handled per pass over the ring. */
#define NATIVE_REAP_BATCH 64

/*
 * The header of the completion ring the kernel maps at the address of the
 * io_context_t (a stable part of the Linux ABI; libaio itself relies on
 * it).  Events sit after the header, indexed by head (ours to advance)
 * and tail (the kernel's).
 */
#define NATIVE_RING_MAGIC 0xa10a10a1
typedef struct NativeRing {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event events[];
} NativeRing;

typedef struct NativeRequest {
    struct iocb iocb;
    FileAioWaiter waiter;
    struct NativeRequest *next;
} NativeRequest;

typedef struct NativeAio {
    FileAio common;
    io_context_t io_ctx;
    int efd;
    BdAioBH *submit_bh;
    NativeRequest *queue_head;      /* waiting for io_submit() */
    NativeRequest **queue_tail;
    unsigned queued;
    unsigned in_flight;             /* in the kernel */
} NativeAio;

static void native_submit(NativeAio *s)
{
    struct iocb *batch[NATIVE_MAX_EVENTS];

    while (s->queued && s->in_flight < NATIVE_MAX_EVENTS) {
        unsigned room = NATIVE_MAX_EVENTS - s->in_flight;
        unsigned n = 0;
        int ret;

        for (NativeRequest *r = s->queue_head; r && n < room; r = r->next) {
            batch[n++] = &r->iocb;
        }
        ret = io_submit(s->io_ctx, n, batch);
        s->common.submits++;
        if (ret == -EAGAIN && s->in_flight) {
            break;      /* the kernel is full: retried on completion */
        }
        if (ret < 0) {
            /* Fail the request the kernel refused; try the rest. */
            NativeRequest *r = s->queue_head;

            s->queue_head = r->next;
            if (!s->queue_head) {
                s->queue_tail = &s->queue_head;
            }
            s->queued--;
            file_aio_waiter_wake(&r->waiter, ret);
            continue;
        }
        for (int i = 0; i < ret; i++) {
            s->queue_head = s->queue_head->next;
        }
        if (!s->queue_head) {
            s->queue_tail = &s->queue_head;
        }
        s->queued -= ret;
        s->in_flight += ret;
        if ((unsigned)ret < n) {
            break;
        }
    }
}

static void native_submit_bh(void *opaque)
{
    native_submit(opaque);
}

static void native_complete(NativeAio *s, struct io_event *ev)
{
    NativeRequest *r = (NativeRequest *)((char *)ev->obj -
                                         offsetof(NativeRequest, iocb));
    /* res is the byte count or a negative errno in an unsigned field. */
    long ret = (long)ev->res;

    s->in_flight--;
    file_aio_waiter_wake(&r->waiter, ret);
}

/* Handle what the ring holds; true if anything completed. */
static bool native_reap(NativeAio *s)
{
    NativeRing *ring = (NativeRing *)s->io_ctx;
    struct io_event evs[NATIVE_REAP_BATCH];
    bool progress = false;

    for (;;) {
        int n = 0;

        if (ring->magic == NATIVE_RING_MAGIC) {
            unsigned head = ring->head;
            unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

            while (head != tail && n < NATIVE_REAP_BATCH) {
                evs[n++] = ring->events[head];
                head = (head + 1) % ring->nr;
            }
            /* Give the slots back before waking anyone who may submit. */
            __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
        } else {
            struct timespec zero = { 0, 0 };

            n = io_getevents(s->io_ctx, 0, NATIVE_REAP_BATCH, evs, &zero);
            if (n < 0) {
                n = 0;
            }
        }
        if (n == 0) {
            break;
        }
        progress = true;
        for (int i = 0; i < n; i++) {
            native_complete(s, &evs[i]);
        }
    }
    if (s->queued) {
        native_submit(s);
    }
    return progress;
}

static void native_read_cb(void *opaque)
{
    NativeAio *s = opaque;
    uint64_t count;

    /* Clear the eventfd before reaping so no completion goes unseen. */
    if (read(s->efd, &count, sizeof(count)) < 0) {
        /* EAGAIN: the poll handler reaped already */
    }
    native_reap(s);
}

static bool native_poll_cb(void *opaque)
{
    NativeAio *s = opaque;
    NativeRing *ring = (NativeRing *)s->io_ctx;

    if (ring->magic == NATIVE_RING_MAGIC &&
        ring->head == __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE)) {
        return false;
    }
    return native_reap(s);
}

static unsigned native_max_batch(NativeAio *s)
{
    unsigned max = file_aio_max_batch(&s->common, NATIVE_DEFAULT_MAX_BATCH);

    return MIN(max, NATIVE_MAX_EVENTS);
}

static ssize_t native_co_rw(FileAio *aio, int fd, uint64_t offset,
                            const struct iovec *iov, int niov, bool write)
{
    NativeAio *s = (NativeAio *)aio;
    NativeRequest r = { .waiter = { .co = bd_coroutine_self() } };

    if (write) {
        io_prep_pwritev(&r.iocb, fd, iov, niov, offset);
    } else {
        io_prep_preadv(&r.iocb, fd, iov, niov, offset);
    }
    io_set_eventfd(&r.iocb, s->efd);
    *s->queue_tail = &r;
    s->queue_tail = &r.next;
    s->queued++;
    if (s->queued >= native_max_batch(s)) {
        native_submit(s);
    } else {
        bd_aio_bh_schedule(s->submit_bh);
    }
    return file_aio_waiter_wait(&r.waiter);
}

static FileAio *native_open(BdAioContext *ctx, GError **errp)
{
    NativeAio *s = g_new0(NativeAio, 1);
    int ret;

    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        bd_error_setg(errp,
                      "Unable to use native AIO: failed to initialize event "
                      "notifier: %s", g_strerror(errno));
        g_free(s);
        return NULL;
    }
    ret = io_setup(NATIVE_MAX_EVENTS, &s->io_ctx);
    if (ret < 0) {
        bd_error_setg(errp,
                      "Unable to use native AIO: failed to create linux AIO "
                      "context: %s", g_strerror(-ret));
        close(s->efd);
        g_free(s);
        return NULL;
    }
    s->queue_tail = &s->queue_head;
    s->submit_bh = bd_aio_bh_new(ctx, native_submit_bh, s);
    bd_aio_set_fd_handler(ctx, s->efd, native_read_cb, NULL, native_poll_cb,
                          s);
    return &s->common;
}

static void native_close(FileAio *aio)
{
    NativeAio *s = (NativeAio *)aio;

    g_assert(!s->in_flight && !s->queued);
    bd_aio_set_fd_handler(aio->ctx, s->efd, NULL, NULL, NULL, NULL);
    bd_aio_bh_delete(s->submit_bh);
    io_destroy(s->io_ctx);
    close(s->efd);
    g_free(s);
}

const FileAioEngine file_aio_native = {
    .name = "native",
    .open = native_open,
    .close = native_close,
    .co_rw = native_co_rw,
};
