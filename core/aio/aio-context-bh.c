/*
 * Bottom halves and the scheduling of coroutines into a context.
 *
 * A scheduled BH sits in its context's list; bd_aio_bh_poll() moves the
 * whole list into a batch on its own stack and runs that batch, so BHs
 * scheduled by the callbacks run in the next iteration (a BH that
 * reschedules itself cannot starve the loop).  A nested bd_aio_poll()
 * from a callback runs what is left of the outer batches first, then its
 * own (the context keeps the batches in a list, oldest first), so a
 * callback that waits in a drain is not waiting for a BH queued behind
 * it.  The lists are
 * sentinel-headed rings, so cancelling a BH unlinks it from whichever
 * list (context or batch) it is in.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aio/aio-context-int.h"
#include "aio/coroutine-int.h"

struct BdAioBH {
    BdAioLink link;         /* first: a link is its BH */
    BdAioContext *ctx;
    BdAioBHFunc *cb;
    void *opaque;
    bool scheduled;         /* under ctx->lock */
    bool oneshot;
};

void bd_aio_link_init(BdAioLink *l)
{
    l->prev = l->next = l;
}

bool bd_aio_link_empty(BdAioLink *l)
{
    return l->next == l;
}

void bd_aio_link_insert_tail(BdAioLink *head, BdAioLink *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

void bd_aio_link_unlink(BdAioLink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

BdAioBH *bd_aio_bh_new(BdAioContext *ctx, BdAioBHFunc *cb, void *opaque)
{
    BdAioBH *bh = g_new0(BdAioBH, 1);

    bd_aio_link_init(&bh->link);
    bh->ctx = ctx;
    bh->cb = cb;
    bh->opaque = opaque;
    return bh;
}

void bd_aio_bh_schedule(BdAioBH *bh)
{
    BdAioContext *ctx = bh->ctx;
    bool added = false;

    g_mutex_lock(&ctx->lock);
    if (!bh->scheduled) {
        bh->scheduled = true;
        bd_aio_link_insert_tail(&ctx->bh_list, &bh->link);
        added = true;
    }
    g_mutex_unlock(&ctx->lock);
    if (added) {
        bd_aio_notify(ctx);
    }
}

void bd_aio_bh_schedule_oneshot(BdAioContext *ctx, BdAioBHFunc *cb,
                                void *opaque)
{
    BdAioBH *bh = bd_aio_bh_new(ctx, cb, opaque);

    bh->oneshot = true;
    bd_aio_bh_schedule(bh);
}

void bd_aio_bh_cancel(BdAioBH *bh)
{
    g_mutex_lock(&bh->ctx->lock);
    if (bh->scheduled) {
        bh->scheduled = false;
        bd_aio_link_unlink(&bh->link);
    }
    g_mutex_unlock(&bh->ctx->lock);
}

void bd_aio_bh_delete(BdAioBH *bh)
{
    bd_aio_bh_cancel(bh);
    g_free(bh);
}

static void aio_wait_kick_cb(void *opaque)
{
}

void bd_aio_wait_kick(BdAioContext *ctx)
{
    bd_aio_bh_schedule_oneshot(ctx, aio_wait_kick_cb, NULL);
}

/* One bd_aio_bh_poll() call's batch, on its stack. */
typedef struct BdAioBHSlice {
    BdAioLink bhs;
    struct BdAioBHSlice *next;
} BdAioBHSlice;

bool bd_aio_bh_pending(BdAioContext *ctx)
{
    bool pending;

    g_mutex_lock(&ctx->lock);
    pending = !bd_aio_link_empty(&ctx->bh_list);
    for (BdAioBHSlice *s = ctx->bh_slices; s && !pending; s = s->next) {
        pending = !bd_aio_link_empty(&s->bhs);
    }
    g_mutex_unlock(&ctx->lock);
    return pending;
}

bool bd_aio_bh_poll(BdAioContext *ctx)
{
    BdAioBHSlice slice;
    BdAioBHSlice *s;
    bool progress = false;

    g_mutex_lock(&ctx->lock);
    if (!bd_aio_link_empty(&ctx->bh_list)) {
        /* Splice the context's list into a new batch, the newest. */
        slice.bhs.next = ctx->bh_list.next;
        slice.bhs.prev = ctx->bh_list.prev;
        slice.bhs.next->prev = &slice.bhs;
        slice.bhs.prev->next = &slice.bhs;
        bd_aio_link_init(&ctx->bh_list);
        slice.next = NULL;
        *ctx->bh_slices_tail = &slice;
        ctx->bh_slices_tail = &slice.next;
    }

    /* Oldest batch first: an outer call's leftovers before ours. */
    while ((s = ctx->bh_slices)) {
        BdAioBH *bh;
        bool oneshot;

        if (bd_aio_link_empty(&s->bhs)) {
            ctx->bh_slices = s->next;
            if (!ctx->bh_slices) {
                ctx->bh_slices_tail = &ctx->bh_slices;
            }
            continue;
        }
        bh = (BdAioBH *)s->bhs.next;
        bd_aio_link_unlink(&bh->link);
        bh->scheduled = false;
        oneshot = bh->oneshot;
        g_mutex_unlock(&ctx->lock);

        /* A reusable BH may delete itself in its callback. */
        bh->cb(bh->opaque);
        if (oneshot) {
            g_free(bh);
        }
        progress = true;
        g_mutex_lock(&ctx->lock);
    }
    g_mutex_unlock(&ctx->lock);
    return progress;
}

void bd_aio_bh_cleanup(BdAioContext *ctx)
{
    while (!bd_aio_link_empty(&ctx->bh_list)) {
        BdAioBH *bh = (BdAioBH *)ctx->bh_list.next;

        bd_aio_link_unlink(&bh->link);
        bh->scheduled = false;
        if (bh->oneshot) {
            g_free(bh);
        }
    }
}

void bd_aio_co_schedule(BdAioContext *ctx, BdCoroutine *co)
{
    const char *prev = NULL;

    if (!__atomic_compare_exchange_n(&co->scheduled, &prev, __func__, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        fprintf(stderr, "blockd: %s: coroutine was already scheduled in "
                "'%s'\n", __func__, prev);
        abort();
    }
    g_mutex_lock(&ctx->lock);
    co->sched_next = NULL;
    *ctx->sched_tail = co;
    ctx->sched_tail = &co->sched_next;
    g_mutex_unlock(&ctx->lock);
    bd_aio_bh_schedule(ctx->co_schedule_bh);
}

void bd_aio_co_schedule_bh_cb(void *opaque)
{
    BdAioContext *ctx = opaque;
    BdCoroutine *co;

    g_mutex_lock(&ctx->lock);
    co = ctx->sched_head;
    ctx->sched_head = NULL;
    ctx->sched_tail = &ctx->sched_head;
    g_mutex_unlock(&ctx->lock);

    while (co) {
        BdCoroutine *next = co->sched_next;

        co->sched_next = NULL;
        __atomic_store_n(&co->scheduled, NULL, __ATOMIC_SEQ_CST);
        bd_aio_coroutine_enter(ctx, co);
        co = next;
    }
}
