/*
 * Micro-benchmark of the concurrency core: prints the cost of one
 * coroutine enter+yield cycle, of creating and finishing a pooled
 * coroutine, of one BH schedule+run in the same thread, of a cross-thread
 * coroutine wake-up round trip, and of a thread-pool round trip.
 * Built, not run by the test suites: `build/tests/unit/bench-coroutine`.
 */
#include <stdio.h>

#include <glib.h>

#include "aio/aio-context.h"
#include "aio-test-util.h"
#include "aio/coroutine.h"
#include "aio/thread-pool.h"

static void report(const char *what, long n, int64_t ns)
{
    printf("%-40s %10.1f ns\n", what, (double)ns / n);
}

static void yield_forever(void *opaque)
{
    for (;;) {
        bd_coroutine_yield();
    }
}

static void nothing(void *opaque)
{
}

static void bh_count(void *opaque)
{
    (*(long *)opaque)++;
}

static int pool_nop(void *opaque)
{
    return 0;
}

static void pool_submitter(void *opaque)
{
    long *n = opaque;
    long i;

    for (i = 0; i < *n; i++) {
        bd_thread_pool_submit_co(NULL, pool_nop, NULL);
    }
    *n = -1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    BdCoroutine *co;
    int64_t start;
    long i, count = 0;

    main_ctx = bd_aio_main_context();

    co = bd_coroutine_create(yield_forever, NULL);
    bd_coroutine_enter(co);
    start = bd_clock_ns();
    for (i = 0; i < n; i++) {
        bd_coroutine_enter(co);
    }
    report("coroutine enter+yield cycle", n, bd_clock_ns() - start);

    start = bd_clock_ns();
    for (i = 0; i < n / 10; i++) {
        bd_coroutine_enter(bd_coroutine_create(nothing, NULL));
    }
    report("coroutine create+enter+terminate", n / 10,
           bd_clock_ns() - start);

    {
        BdAioBH *bh = bd_aio_bh_new(main_ctx, bh_count, &count);

        start = bd_clock_ns();
        for (i = 0; i < n / 10; i++) {
            bd_aio_bh_schedule(bh);
            bd_aio_poll(main_ctx, false);
        }
        report("BH schedule + bd_aio_poll (same thread)", n / 10,
               bd_clock_ns() - start);
        bd_aio_bh_delete(bh);
        if (count != n / 10) {
            fprintf(stderr, "BH count mismatch\n");
            return 1;
        }
    }

    for (int poll = 0; poll < 2; poll++) {
        g_autoptr(GError) err = NULL;
        BdIOThread *iot = bd_iothread_new("bench",
                                          poll ? BD_AIO_POLL_MAX_NS_DEFAULT
                                               : 0, 0, 0, &err);
        AioTestPingPong p;

        if (!iot) {
            fprintf(stderr, "%s\n", err->message);
            return 1;
        }
        p = aio_test_ping_pong(iot, (int)(n / 100));
        report(poll ? "cross-thread wake round trip (poll 32us)"
                    : "cross-thread wake round trip (no poll)",
               p.main_count, p.elapsed_ns);
        bd_iothread_destroy(iot);
    }

    {
        long left = n / 100, rounds = n / 100;

        start = bd_clock_ns();
        bd_coroutine_enter(bd_coroutine_create(pool_submitter, &left));
        WAIT_FOR(left < 0);
        report("thread pool submit_co round trip", rounds,
               bd_clock_ns() - start);
    }
    return 0;
}
