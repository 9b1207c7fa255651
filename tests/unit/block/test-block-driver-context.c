/*
 * The contract of <blockd/block-driver.h>: a driver without
 * BD_DRIVER_THREAD_SAFE sees its coroutine callbacks only in the node's
 * AioContext, even when the request comes from an IOThread (as a
 * multi-threaded export sends them); a driver with the flag is called in
 * the requesting thread.  Either way the caller is back in its own
 * thread when the request returns.
 */
#include <glib.h>

#include <blockd/iothread.h>

#include "aio/aio-context.h"
#include "block/block-int.h"

typedef struct Probe {
    BdBlockBackend *blk;
    BdAioContext *in_driver;    /* the context the driver ran in */
    BdAioContext *after;        /* the caller's, once the read returned */
    int ret;
    bool done;
    BdAioContext *main_ctx;
} Probe;

static Probe *probe;

static int probe_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                           BdIOVector *qiov, BdRequestFlags flags)
{
    probe->in_driver = bd_aio_current_context();
    bd_iovec_memset(qiov, 0, 0, bytes);
    return 0;
}

static int64_t probe_co_getlength(BdNode *node)
{
    return 1 << 20;
}

static BdBlockDriver probe_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "probe",
    .flags = BD_DRIVER_PROTOCOL,
    .co_getlength = probe_co_getlength,
    .co_preadv = probe_co_preadv,
};

static void reader_co(void *opaque)
{
    Probe *p = opaque;
    char buf[512];

    p->ret = bd_blk_co_pread(p->blk, 0, sizeof(buf), buf, 0);
    p->after = bd_aio_current_context();
    __atomic_store_n(&p->done, true, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(p->main_ctx);
}

static void start_reader(void *opaque)
{
    bd_coroutine_enter(bd_coroutine_create(reader_co, opaque));
}

static void check(bool thread_safe)
{
    GError *err = NULL;
    Probe p = { .main_ctx = bd_aio_main_context() };
    g_autofree char *name = g_strdup_printf("probe%d", thread_safe);
    BdIOThread *iot;
    BdAioContext *iot_ctx;
    BdNode *node;

    probe = &p;
    probe_driver.flags = BD_DRIVER_PROTOCOL |
                         (thread_safe ? BD_DRIVER_THREAD_SAFE : 0);
    node = bd_node_open_driver(&probe_driver, name, NULL, &err);
    g_assert_no_error(err);
    p.blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ, BD_PERM_ALL);
    g_assert_true(bd_blk_insert(p.blk, node, &err));
    g_assert_no_error(err);

    iot = bd_iothread_new(name, 0, 0, 0, &err);
    g_assert_no_error(err);
    iot_ctx = bd_iothread_get_aio_context(iot);
    bd_aio_bh_schedule_oneshot(iot_ctx, start_reader, &p);
    while (!__atomic_load_n(&p.done, __ATOMIC_SEQ_CST)) {
        bd_aio_poll(p.main_ctx, true);
    }
    bd_iothread_destroy(iot);

    g_assert_cmpint(p.ret, ==, 0);
    g_assert_true(p.in_driver == (thread_safe ? iot_ctx : p.main_ctx));
    g_assert_true(p.after == iot_ctx);
    bd_blk_unref(p.blk);
    bd_node_unref(node);
}

static void test_not_thread_safe(void)
{
    check(false);
}

static void test_thread_safe(void)
{
    check(true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    g_test_add_func("/block/driver-context/not-thread-safe",
                    test_not_thread_safe);
    g_test_add_func("/block/driver-context/thread-safe", test_thread_safe);
    return g_test_run();
}
