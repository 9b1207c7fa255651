/*
 * IOThreads: a thread that runs its own AioContext until destroyed.  The
 * object-iothread plugin wraps these in QOM-like objects; here is only the
 * thread and its loop.
 */
#include <sys/syscall.h>
#include <unistd.h>

#include "aio-context-int.h"

struct BdIOThread {
    char *id;
    BdAioContext *ctx;
    GThread *thread;
    GMutex lock;
    GCond started_cond;
    bool started;
    int thread_id;
    bool running;           /* read and cleared in the IOThread only */
};

static gpointer iothread_run(gpointer opaque)
{
    BdIOThread *iot = opaque;

    bd_aio_context_set_home_thread(iot->ctx);

    g_mutex_lock(&iot->lock);
    iot->thread_id = (int)syscall(SYS_gettid);
    iot->started = true;
    g_cond_signal(&iot->started_cond);
    g_mutex_unlock(&iot->lock);

    while (iot->running) {
        bd_aio_poll(iot->ctx, true);
    }
    bd_aio_set_current_context(NULL);
    return NULL;
}

BdIOThread *bd_iothread_new(const char *id, int64_t poll_max_ns,
                            int64_t poll_grow, int64_t poll_shrink,
                            GError **errp)
{
    BdIOThread *iot;
    BdAioContext *ctx;
    g_autofree char *name = NULL;

    ctx = bd_aio_context_new(errp);
    if (!ctx) {
        return NULL;
    }
    if (!bd_aio_context_set_poll_params(ctx, poll_max_ns, poll_grow,
                                        poll_shrink, errp)) {
        bd_aio_context_unref(ctx);
        return NULL;
    }

    iot = g_new0(BdIOThread, 1);
    iot->id = g_strdup(id);
    iot->ctx = ctx;
    iot->running = true;
    g_mutex_init(&iot->lock);
    g_cond_init(&iot->started_cond);

    /* Linux truncates thread names to 15 bytes. */
    name = g_strdup_printf("IO %s", id);
    iot->thread = g_thread_try_new(name, iothread_run, iot, errp);
    if (!iot->thread) {
        g_mutex_clear(&iot->lock);
        g_cond_clear(&iot->started_cond);
        g_free(iot->id);
        g_free(iot);
        bd_aio_context_unref(ctx);
        return NULL;
    }

    g_mutex_lock(&iot->lock);
    while (!iot->started) {
        g_cond_wait(&iot->started_cond, &iot->lock);
    }
    g_mutex_unlock(&iot->lock);
    return iot;
}

BdAioContext *bd_iothread_get_aio_context(BdIOThread *iot)
{
    return iot->ctx;
}

const char *bd_iothread_get_id(BdIOThread *iot)
{
    return iot->id;
}

int bd_iothread_get_thread_id(BdIOThread *iot)
{
    return iot->thread_id;
}

static void iothread_stop_bh(void *opaque)
{
    BdIOThread *iot = opaque;

    iot->running = false;
}

void bd_iothread_destroy(BdIOThread *iot)
{
    if (!iot) {
        return;
    }
    /* A BH, so what was scheduled before runs first and the loop wakes. */
    bd_aio_bh_schedule_oneshot(iot->ctx, iothread_stop_bh, iot);
    g_thread_join(iot->thread);

    bd_aio_context_unref(iot->ctx);
    g_mutex_clear(&iot->lock);
    g_cond_clear(&iot->started_cond);
    g_free(iot->id);
    g_free(iot);
}
