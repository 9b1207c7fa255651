/*
 * Coroutines: enter/yield/terminate, "entered from" chaining, many live
 * coroutines, many switches, the stack pool, sleeping.
 */
#include <glib.h>

#include "aio/aio-context.h"
#include "aio/coroutine.h"

static void set_flag_and_yield(void *opaque)
{
    int *state = opaque;

    g_assert_true(bd_in_coroutine());
    *state = 1;
    bd_coroutine_yield();
    *state = 2;
}

static void test_enter_yield_terminate(void)
{
    int state = 0;
    BdCoroutine *co = bd_coroutine_create(set_flag_and_yield, &state);

    g_assert_false(bd_in_coroutine());
    g_assert_false(bd_coroutine_entered(co));
    bd_coroutine_enter(co);
    g_assert_cmpint(state, ==, 1);
    g_assert_false(bd_coroutine_entered(co));
    g_assert_true(bd_coroutine_get_aio_context(co) == bd_aio_main_context());
    bd_coroutine_enter(co);         /* runs to its end */
    g_assert_cmpint(state, ==, 2);
    g_assert_false(bd_in_coroutine());
}

static void self_entry(void *opaque)
{
    BdCoroutine **self = opaque;

    *self = bd_coroutine_self();
}

static void test_self(void)
{
    BdCoroutine *seen = NULL;
    BdCoroutine *co = bd_coroutine_create(self_entry, &seen);

    bd_coroutine_enter(co);
    g_assert_true(seen == co);
    g_assert_true(bd_coroutine_self() != co);
}

/* Nesting: the log records who ran when. */
typedef struct NestState {
    GString *log;
    BdCoroutine *inner;
} NestState;

static void nest_inner(void *opaque)
{
    NestState *s = opaque;

    g_string_append(s->log, "i1 ");
    bd_coroutine_yield();           /* back to the outer coroutine */
    g_string_append(s->log, "i2 ");
}

static void nest_outer(void *opaque)
{
    NestState *s = opaque;

    g_string_append(s->log, "o1 ");
    s->inner = bd_coroutine_create(nest_inner, s);
    bd_coroutine_enter(s->inner);
    g_string_append(s->log, "o2 ");
    bd_coroutine_yield();           /* back to the test */
    g_string_append(s->log, "o3 ");
    bd_coroutine_enter(s->inner);   /* inner terminates: back here */
    g_string_append(s->log, "o4 ");
}

static void test_nesting(void)
{
    NestState s = { .log = g_string_new(NULL) };
    BdCoroutine *outer = bd_coroutine_create(nest_outer, &s);

    bd_coroutine_enter(outer);
    g_string_append(s.log, "t1 ");
    bd_coroutine_enter(outer);
    g_string_append(s.log, "t2");
    g_assert_cmpstr(s.log->str, ==, "o1 i1 o2 t1 o3 i2 o4 t2");
    g_string_free(s.log, TRUE);
}

static void count_yield_count(void *opaque)
{
    int *n = opaque;

    (*n)++;
    bd_coroutine_yield();
    (*n)--;
}

static void test_many_alive(void)
{
    enum { N = 10000 };
    BdCoroutine **cos = g_new(BdCoroutine *, N);
    int alive = 0;
    int i;

    for (i = 0; i < N; i++) {
        cos[i] = bd_coroutine_create(count_yield_count, &alive);
        bd_coroutine_enter(cos[i]);
    }
    g_assert_cmpint(alive, ==, N);
    for (i = 0; i < N; i++) {
        bd_coroutine_enter(cos[i]);
    }
    g_assert_cmpint(alive, ==, 0);
    g_free(cos);
}

static void yield_n(void *opaque)
{
    unsigned long *n = opaque;

    while (*n > 0) {
        (*n)--;
        bd_coroutine_yield();
    }
}

static void test_many_switches(void)
{
    enum { CYCLES = 1000000 };
    unsigned long left = CYCLES, i = 0;
    BdCoroutine *co = bd_coroutine_create(yield_n, &left);

    while (left > 0) {
        bd_coroutine_enter(co);
        i++;
    }
    bd_coroutine_enter(co);         /* sees 0 and terminates */
    g_assert_cmpuint(i, ==, CYCLES);
}

static void record_stack(void *opaque)
{
    char here;
    uintptr_t *where = opaque;

    *where = (uintptr_t)&here;
}

static void test_pool_reuse(void)
{
    uintptr_t first = 0, second = 0;
    unsigned before;

    bd_coroutine_enter(bd_coroutine_create(record_stack, &first));
    before = bd_coroutine_pool_size();
    g_assert_cmpuint(before, >=, 1);
    /* The next coroutine takes the stack just released. */
    bd_coroutine_enter(bd_coroutine_create(record_stack, &second));
    g_assert_cmphex(first, ==, second);
    g_assert_cmpuint(bd_coroutine_pool_size(), ==, before);
}

static void test_pool_cap(void)
{
    enum { N = 20 };
    BdCoroutine *cos[N];
    int alive = 0;
    unsigned base;
    int i;

    for (i = 0; i < N; i++) {
        cos[i] = bd_coroutine_create(count_yield_count, &alive);
        bd_coroutine_enter(cos[i]);
    }
    base = bd_coroutine_pool_size();
    bd_coroutine_pool_set_max(base + 5);
    for (i = 0; i < N; i++) {
        bd_coroutine_enter(cos[i]);
    }
    /* Only up to the cap went back to the pool; the rest were unmapped. */
    g_assert_cmpuint(bd_coroutine_pool_size(), ==, base + 5);
    bd_coroutine_pool_set_max(BD_COROUTINE_POOL_DEFAULT_MAX);
}

/* A coroutine created and terminated in a thread without a context. */
static gpointer thread_coroutines(gpointer opaque)
{
    unsigned long left = 1000;
    BdCoroutine *co = bd_coroutine_create(yield_n, &left);
    int i;

    g_assert_null(bd_aio_current_context());
    for (i = 0; i < 1000; i++) {
        bd_coroutine_enter(co);
    }
    g_assert_cmpuint(left, ==, 0);
    bd_coroutine_enter(co);     /* terminates */
    /* Its stack is in this thread's pool, freed when the thread exits. */
    g_assert_cmpuint(bd_coroutine_pool_size(), ==, 1);
    return NULL;
}

static void test_other_thread(void)
{
    g_thread_join(g_thread_new("co-test", thread_coroutines, NULL));
}

typedef struct SleepState {
    int64_t ns;
    int64_t slept;
    bool done;
} SleepState;

static void sleeper(void *opaque)
{
    SleepState *s = opaque;
    int64_t start = bd_clock_ns();

    bd_co_sleep_ns(s->ns);
    s->slept = bd_clock_ns() - start;
    s->done = true;
}

static void test_sleep(void)
{
    SleepState a = { .ns = 3000000 }, b = { .ns = 200000 };

    bd_coroutine_enter(bd_coroutine_create(sleeper, &a));
    bd_coroutine_enter(bd_coroutine_create(sleeper, &b));
    while (!a.done || !b.done) {
        bd_aio_poll(bd_aio_main_context(), true);
        /* The short sleep ends first. */
        g_assert_true(!a.done || b.done);
    }
    g_assert_cmpint(a.slept, >=, a.ns);
    g_assert_cmpint(b.slept, >=, b.ns);
}

/* Waking from a coroutine: the woken one runs after the waker yields. */
typedef struct WakeState {
    BdCoroutine *sleeper;
    GString *log;
} WakeState;

static void wake_sleeper(void *opaque)
{
    WakeState *s = opaque;

    g_string_append(s->log, "s1 ");
    bd_coroutine_yield();
    g_string_append(s->log, "s2 ");
}

static void wake_waker(void *opaque)
{
    WakeState *s = opaque;

    bd_aio_co_wake(s->sleeper);
    g_string_append(s->log, "w1 ");
}

static void test_wake_in_coroutine(void)
{
    WakeState s = { .log = g_string_new(NULL) };

    s.sleeper = bd_coroutine_create(wake_sleeper, &s);
    bd_coroutine_enter(s.sleeper);
    bd_coroutine_enter(bd_coroutine_create(wake_waker, &s));
    g_string_append(s.log, "t");
    g_assert_cmpstr(s.log->str, ==, "s1 w1 s2 t");
    g_string_free(s.log, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();

    g_test_add_func("/coroutine/enter-yield-terminate",
                    test_enter_yield_terminate);
    g_test_add_func("/coroutine/self", test_self);
    g_test_add_func("/coroutine/nesting", test_nesting);
    g_test_add_func("/coroutine/many-alive", test_many_alive);
    g_test_add_func("/coroutine/many-switches", test_many_switches);
    g_test_add_func("/coroutine/pool-reuse", test_pool_reuse);
    g_test_add_func("/coroutine/pool-cap", test_pool_cap);
    g_test_add_func("/coroutine/other-thread", test_other_thread);
    g_test_add_func("/coroutine/sleep", test_sleep);
    g_test_add_func("/coroutine/wake-in-coroutine", test_wake_in_coroutine);
    return g_test_run();
}
