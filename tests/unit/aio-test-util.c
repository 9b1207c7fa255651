/*
 * Helpers for the event-loop tests (see aio-test-util.h).
 */
#include <glib.h>

#include "aio-test-util.h"

BdAioContext *main_ctx;

void aio_test_spawn_bh(void *opaque)
{
    AioTestSpawn *sp = opaque;

    for (int i = 0; i < sp->count; i++) {
        void *arg = (char *)sp->args + (size_t)i * sp->arg_size;

        bd_coroutine_enter(bd_coroutine_create(sp->entry, arg));
    }
}

void aio_test_spawn_everywhere(const char *prefix, int n, AioTestSpawn *sp,
                               int *finished, int target)
{
    g_autofree BdIOThread **iot = g_new0(BdIOThread *, n + 1);

    for (int i = 0; i < n; i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *id = g_strdup_printf("%s%d", prefix, i);

        iot[i] = bd_iothread_new(id, 0, 0, 0, &err);
        g_assert_no_error(err);
        bd_aio_bh_schedule_oneshot(bd_iothread_get_aio_context(iot[i]),
                                   aio_test_spawn_bh, &sp[i]);
    }
    aio_test_spawn_bh(&sp[n]);
    WAIT_FOR(__atomic_load_n(finished, __ATOMIC_SEQ_CST) == target);
    for (int i = 0; i < n; i++) {
        bd_iothread_destroy(iot[i]);
    }
}

typedef struct PingPong {
    BdIOThread *iot;
    GThread *io_thread;
    BdCoroutine *main_co, *io_co;
    int rounds;
    bool ready, done;
    AioTestPingPong out;
} PingPong;

static void pp_set_ready(void *opaque)
{
    PingPong *p = opaque;

    p->ready = true;
}

static void pp_io(void *opaque)
{
    PingPong *p = opaque;

    p->io_thread = g_thread_self();
    bd_coroutine_yield();               /* parked until the first ping */
    for (;;) {
        if (g_thread_self() != p->io_thread ||
            bd_aio_current_context() !=
                bd_iothread_get_aio_context(p->iot)) {
            p->out.wrong_thread = true;
        }
        p->out.io_count++;
        bd_aio_co_wake(p->main_co);     /* main thread, through its ctx */
        if (p->out.io_count == p->rounds) {
            return;
        }
        bd_coroutine_yield();
    }
}

static void pp_start_io(void *opaque)
{
    PingPong *p = opaque;

    p->io_co = bd_coroutine_create(pp_io, p);
    bd_coroutine_enter(p->io_co);
    bd_aio_bh_schedule_oneshot(main_ctx, pp_set_ready, p);
}

static void pp_main(void *opaque)
{
    PingPong *p = opaque;

    for (int i = 0; i < p->rounds; i++) {
        bd_aio_co_wake(p->io_co);       /* IOThread, through its ctx */
        bd_coroutine_yield();
        if (bd_aio_current_context() != main_ctx) {
            p->out.wrong_thread = true;
        }
        p->out.main_count++;
    }
    p->done = true;
}

AioTestPingPong aio_test_ping_pong(BdIOThread *iot, int rounds)
{
    PingPong p = { .iot = iot, .rounds = rounds };
    int64_t start;

    bd_aio_bh_schedule_oneshot(bd_iothread_get_aio_context(iot),
                               pp_start_io, &p);
    WAIT_FOR(p.ready);
    p.main_co = bd_coroutine_create(pp_main, &p);
    start = bd_clock_ns();
    bd_coroutine_enter(p.main_co);
    WAIT_FOR(p.done);
    p.out.elapsed_ns = bd_clock_ns() - start;
    return p.out;
}
