/*
 * CoMutex, CoRwLock and CoQueue, in one context and across IOThreads.
 */
#include <glib.h>

#include "aio/aio-context.h"
#include "aio-test-util.h"
#include "aio/co-lock.h"
#include "aio/coroutine.h"


/* Give other coroutines of this context a turn: go round the loop once. */
static void co_yield_to_loop(void)
{
    bd_aio_co_schedule(bd_coroutine_get_aio_context(bd_coroutine_self()),
                       bd_coroutine_self());
    bd_coroutine_yield();
}

/* --- CoMutex ------------------------------------------------------------ */

typedef struct MutexState {
    BdCoMutex mutex;
    int inside;             /* coroutines inside the critical section */
    bool overlap;
    long counter;
    int iterations;
    int finished;
} MutexState;

static void mutex_worker(void *opaque)
{
    MutexState *s = opaque;
    int i;

    for (i = 0; i < s->iterations; i++) {
        long c;

        bd_co_mutex_lock(&s->mutex);
        if (__atomic_add_fetch(&s->inside, 1, __ATOMIC_SEQ_CST) != 1) {
            s->overlap = true;
        }
        c = s->counter;
        co_yield_to_loop();         /* others run while we hold it */
        s->counter = c + 1;
        __atomic_sub_fetch(&s->inside, 1, __ATOMIC_SEQ_CST);
        bd_co_mutex_unlock(&s->mutex);
    }
    __atomic_add_fetch(&s->finished, 1, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(main_ctx);     /* the test waits in the main loop */
}

static void test_mutex_exclusion(void)
{
    enum { N = 200, ITER = 20 };
    MutexState s = { .iterations = ITER };
    int i;

    bd_co_mutex_init(&s.mutex);
    for (i = 0; i < N; i++) {
        bd_coroutine_enter(bd_coroutine_create(mutex_worker, &s));
    }
    WAIT_FOR(s.finished == N);
    g_assert_false(s.overlap);
    g_assert_cmpint(s.counter, ==, N * ITER);
    g_assert_null(bd_co_mutex_holder(&s.mutex, NULL));
}

typedef struct FairState {
    BdCoMutex mutex;
    GArray *order;
    int finished;
} FairState;

typedef struct FairArg {
    FairState *s;
    int id;
} FairArg;

static void fair_worker(void *opaque)
{
    FairArg *a = opaque;
    int round;

    for (round = 0; round < 3; round++) {
        bd_co_mutex_lock(&a->s->mutex);
        g_array_append_val(a->s->order, a->id);
        co_yield_to_loop();
        bd_co_mutex_unlock(&a->s->mutex);
    }
    a->s->finished++;
}

static void fair_holder(void *opaque)
{
    FairState *s = opaque;
    BdAioContext *ctx;

    bd_co_mutex_lock(&s->mutex);
    g_assert_true(bd_co_mutex_holder(&s->mutex, &ctx) == bd_coroutine_self());
    g_assert_true(ctx == main_ctx);
    bd_coroutine_yield();
    bd_co_mutex_unlock(&s->mutex);
}

static void test_mutex_fairness(void)
{
    enum { N = 50 };
    FairState s = { .order = g_array_new(FALSE, FALSE, sizeof(int)) };
    FairArg args[N];
    BdCoroutine *holder;
    int i;

    bd_co_mutex_init(&s.mutex);
    holder = bd_coroutine_create(fair_holder, &s);
    bd_coroutine_enter(holder);
    /* Everybody queues behind the holder in creation order. */
    for (i = 0; i < N; i++) {
        args[i] = (FairArg) { .s = &s, .id = i };
        bd_coroutine_enter(bd_coroutine_create(fair_worker, &args[i]));
    }
    bd_coroutine_enter(holder);
    WAIT_FOR(s.finished == N);

    /* FIFO hand-over: each round in arrival order, no barging. */
    g_assert_cmpuint(s.order->len, ==, 3 * N);
    for (i = 0; i < 3 * N; i++) {
        g_assert_cmpint(g_array_index(s.order, int, i), ==, i % N);
    }
    g_array_free(s.order, TRUE);
}

/* Coroutines in the main thread and two IOThreads share one CoMutex. */
static void test_mutex_threads(void)
{
    enum { PER_CTX = 30, ITER = 50 };
    MutexState s = { .iterations = ITER };
    AioTestSpawn sp = { .entry = mutex_worker, .args = &s, .count = PER_CTX };
    AioTestSpawn everywhere[3] = { sp, sp, sp };

    bd_co_mutex_init(&s.mutex);
    aio_test_spawn_everywhere("m", 2, everywhere, &s.finished, 3 * PER_CTX);
    g_assert_false(s.overlap);
    g_assert_cmpint(s.counter, ==, 3 * PER_CTX * ITER);
}

/* --- CoRwLock ----------------------------------------------------------- */

typedef struct RwState {
    BdCoRwLock lock;
    int readers_in;
    int max_readers;
    bool writer_in;
    bool bad;
    GString *log;
    int finished;
} RwState;

static void rw_reader(void *opaque)
{
    RwState *s = opaque;

    bd_co_rwlock_rdlock(&s->lock);
    if (s->writer_in) {
        s->bad = true;
    }
    s->readers_in++;
    s->max_readers = MAX(s->max_readers, s->readers_in);
    g_string_append_c(s->log, 'r');
    co_yield_to_loop();
    s->readers_in--;
    bd_co_rwlock_unlock(&s->lock);
    s->finished++;
}

static void rw_writer(void *opaque)
{
    RwState *s = opaque;

    bd_co_rwlock_wrlock(&s->lock);
    if (s->writer_in || s->readers_in) {
        s->bad = true;
    }
    s->writer_in = true;
    g_string_append_c(s->log, 'W');
    co_yield_to_loop();
    s->writer_in = false;
    bd_co_rwlock_unlock(&s->lock);
    s->finished++;
}

static void test_rwlock(void)
{
    RwState s = { .log = g_string_new(NULL) };
    /* Readers share; a queued writer holds back later readers. */
    static const char plan[] = "rrrWrrWWr";
    int i;

    bd_co_rwlock_init(&s.lock);
    for (i = 0; plan[i]; i++) {
        bd_coroutine_enter(bd_coroutine_create(
            plan[i] == 'W' ? rw_writer : rw_reader, &s));
    }
    WAIT_FOR(s.finished == (int)strlen(plan));
    g_assert_false(s.bad);
    g_assert_cmpint(s.max_readers, ==, 3);
    g_assert_cmpstr(s.log->str, ==, plan);
    g_string_free(s.log, TRUE);
}

static void rw_downgrader(void *opaque)
{
    RwState *s = opaque;

    bd_co_rwlock_wrlock(&s->lock);
    g_string_append_c(s->log, 'W');
    co_yield_to_loop();             /* the reader queues meanwhile */
    bd_co_rwlock_downgrade(&s->lock);
    s->readers_in++;
    co_yield_to_loop();             /* the reader gets in beside us */
    g_string_append_c(s->log, 'd');
    s->readers_in--;
    bd_co_rwlock_unlock(&s->lock);
    s->finished++;
}

static void test_rwlock_downgrade(void)
{
    RwState s = { .log = g_string_new(NULL) };

    bd_co_rwlock_init(&s.lock);
    bd_coroutine_enter(bd_coroutine_create(rw_downgrader, &s));
    bd_coroutine_enter(bd_coroutine_create(rw_reader, &s));
    WAIT_FOR(s.finished == 2);
    g_assert_cmpstr(s.log->str, ==, "Wrd");
    g_assert_cmpint(s.max_readers, ==, 2);
    g_string_free(s.log, TRUE);
}

/* --- CoQueue ------------------------------------------------------------ */

typedef struct QueueState {
    BdCoMutex mutex;
    BdCoQueue not_empty;
    int items;
    int consumed;
    int finished;
} QueueState;

static void consumer(void *opaque)
{
    QueueState *s = opaque;

    bd_co_mutex_lock(&s->mutex);
    for (;;) {
        while (s->items == 0 && s->items >= 0) {
            bd_co_queue_wait(&s->not_empty, &s->mutex);
        }
        if (s->items < 0) {
            break;                  /* closed */
        }
        s->items--;
        s->consumed++;
    }
    bd_co_mutex_unlock(&s->mutex);
    s->finished++;
}

static void producer(void *opaque)
{
    QueueState *s = opaque;
    int i;

    for (i = 0; i < 1000; i++) {
        bd_co_mutex_lock(&s->mutex);
        s->items++;
        bd_co_queue_next(&s->not_empty);
        bd_co_mutex_unlock(&s->mutex);
        if (i % 7 == 0) {
            co_yield_to_loop();
        }
    }
    /* Let the consumers drain, then close and wake everyone. */
    bd_co_mutex_lock(&s->mutex);
    while (s->items > 0) {
        bd_co_mutex_unlock(&s->mutex);
        co_yield_to_loop();
        bd_co_mutex_lock(&s->mutex);
    }
    s->items = -1;
    bd_co_queue_restart_all(&s->not_empty);
    bd_co_mutex_unlock(&s->mutex);
    s->finished++;
}

static void test_queue(void)
{
    enum { CONSUMERS = 10 };
    QueueState s = { 0 };
    int i;

    bd_co_mutex_init(&s.mutex);
    bd_co_queue_init(&s.not_empty);
    for (i = 0; i < CONSUMERS; i++) {
        bd_coroutine_enter(bd_coroutine_create(consumer, &s));
    }
    bd_coroutine_enter(bd_coroutine_create(producer, &s));
    WAIT_FOR(s.finished == CONSUMERS + 1);
    g_assert_cmpint(s.consumed, ==, 1000);
    g_assert_true(bd_co_queue_empty(&s.not_empty));
}

typedef struct OrderState {
    BdCoQueue q;
    GString *log;
} OrderState;

typedef struct OrderArg {
    OrderState *s;
    char name;
} OrderArg;

static void queue_waiter(void *opaque)
{
    OrderArg *a = opaque;

    bd_co_queue_wait(&a->s->q, NULL);
    g_string_append_c(a->s->log, a->name);
}

static void test_queue_order(void)
{
    OrderState s = { .log = g_string_new(NULL) };
    OrderArg args[4] = {
        { &s, 'a' }, { &s, 'b' }, { &s, 'c' }, { &s, 'd' },
    };
    int i;

    bd_co_queue_init(&s.q);
    g_assert_false(bd_co_queue_next(&s.q));
    for (i = 0; i < 4; i++) {
        bd_coroutine_enter(bd_coroutine_create(queue_waiter, &args[i]));
    }
    g_assert_true(bd_co_queue_next(&s.q));  /* wakes a at once */
    g_assert_cmpstr(s.log->str, ==, "a");
    bd_co_queue_restart_all(&s.q);
    g_assert_cmpstr(s.log->str, ==, "abcd");
    g_assert_true(bd_co_queue_empty(&s.q));
    g_string_free(s.log, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();

    g_test_add_func("/co-lock/mutex-exclusion", test_mutex_exclusion);
    g_test_add_func("/co-lock/mutex-fairness", test_mutex_fairness);
    g_test_add_func("/co-lock/mutex-threads", test_mutex_threads);
    g_test_add_func("/co-lock/rwlock", test_rwlock);
    g_test_add_func("/co-lock/rwlock-downgrade", test_rwlock_downgrade);
    g_test_add_func("/co-lock/queue", test_queue);
    g_test_add_func("/co-lock/queue-order", test_queue_order);
    return g_test_run();
}
