/*
 * IOThreads: a thread that runs its own AioContext until destroyed, found
 * by id (the id of the object that owns it), plus the per-context settings
 * and user counts that objects and nodes in IOThreads need.
 */
#include <inttypes.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <blockd/error.h>
#include <blockd/iothread.h>

#include "aio/aio-context-int.h"

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

/* IOThreads by id, for bd_iothread_find().  Main thread. */
static GHashTable *iothreads_by_id;

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

    if (!iothreads_by_id) {
        iothreads_by_id = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(iothreads_by_id, iot->id, iot);
    return iot;
}

BdIOThread *bd_iothread_find(const char *id)
{
    return iothreads_by_id ? g_hash_table_lookup(iothreads_by_id, id) : NULL;
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
    if (iothreads_by_id &&
        g_hash_table_lookup(iothreads_by_id, iot->id) == iot) {
        g_hash_table_remove(iothreads_by_id, iot->id);
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

/* ---- parameters and users, for iothread objects ---- */

bool bd_aio_context_set_aio_params(BdAioContext *ctx, int64_t max_batch,
                                   GError **errp)
{
    if (max_batch < 0) {
        bd_error_setg(errp,
                      "aio-max-batch value must be in range [0, %" PRId64 "]",
                      INT64_MAX);
        return false;
    }
    __atomic_store_n(&ctx->aio_max_batch, max_batch, __ATOMIC_RELAXED);
    return true;
}

int64_t bd_aio_context_get_aio_max_batch(BdAioContext *ctx)
{
    return __atomic_load_n(&ctx->aio_max_batch, __ATOMIC_RELAXED);
}

void bd_aio_context_add_user(BdAioContext *ctx)
{
    __atomic_add_fetch(&ctx->users, 1, __ATOMIC_RELAXED);
}

void bd_aio_context_remove_user(BdAioContext *ctx)
{
    unsigned old = __atomic_fetch_sub(&ctx->users, 1, __ATOMIC_RELAXED);

    g_assert(old > 0);
}

unsigned bd_aio_context_get_users(BdAioContext *ctx)
{
    return __atomic_load_n(&ctx->users, __ATOMIC_RELAXED);
}
