/*
 * Nodes moved into an IOThread: the drivers' detach/attach callbacks, the
 * context's user count, requests served in the IOThread's thread, drains
 * from the main loop across threads, and the refusals.
 */
#include <string.h>

#include <glib.h>

#include <blockd/error.h>
#include <blockd/iothread.h>

#include "block/block-int.h"

#define DISK_SIZE (64 * 1024)

typedef struct CtxState {
    BdAioContext *attached;     /* the last attach_aio_context's */
    int detaches, attaches;
    BdAioContext *read_ctx;     /* bd_aio_current_context() in preadv */
    int64_t delay_ns;
    int reads;
} CtxState;

static BdAioContext *main_ctx;

static int ctx_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    CtxState *s = bd_node_get_opaque(node);

    s->read_ctx = bd_aio_current_context();
    g_assert_true(s->read_ctx == bd_node_get_aio_context(node));
    if (s->delay_ns) {
        bd_co_sleep_ns(s->delay_ns);
    }
    bd_iovec_memset(qiov, 0, 0xa5, bytes);
    __atomic_add_fetch(&s->reads, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int64_t ctx_getlength(BdNode *node)
{
    return DISK_SIZE;
}

static void ctx_detach(BdNode *node)
{
    CtxState *s = bd_node_get_opaque(node);

    s->detaches++;
}

static void ctx_attach(BdNode *node, BdAioContext *new_ctx)
{
    CtxState *s = bd_node_get_opaque(node);

    g_assert_true(bd_node_get_aio_context(node) == new_ctx);
    s->attached = new_ctx;
    s->attaches++;
}

static const BdBlockDriver ctx_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "test-ctx",
    .description = "records the contexts it runs in",
    .instance_size = sizeof(CtxState),
    .flags = BD_DRIVER_PROTOCOL,
    .co_getlength = ctx_getlength,
    .co_preadv = ctx_preadv,
    .detach_aio_context = ctx_detach,
    .attach_aio_context = ctx_attach,
};

static BdNode *open_ctx_node(const char *name)
{
    g_autoptr(GError) err = NULL;
    BdNode *node = bd_node_open_driver(&ctx_driver, name, NULL, &err);

    g_assert_no_error(err);
    return node;
}

static CtxState *state(BdNode *node)
{
    return bd_node_get_opaque(node);
}

static void delete_node(BdNode *node)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(bd_node_delete_by_monitor(bd_node_get_name(node), &err));
    g_assert_no_error(err);
}

/* A read through a backend, run in a coroutine of @ctx. */
typedef struct Read {
    BdBlockBackend *blk;
    int ret;
    bool done;                  /* atomic */
    uint8_t buf[512];
} Read;

static void read_co(void *opaque)
{
    Read *r = opaque;
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, r->buf, sizeof(r->buf));
    r->ret = bd_blk_co_preadv(r->blk, 0, sizeof(r->buf), &qiov, 0);
    __atomic_store_n(&r->done, true, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(main_ctx);
}

static void read_start(Read *r, BdAioContext *ctx)
{
    bd_aio_co_enter(ctx, bd_coroutine_create(read_co, r));
}

static void read_wait(Read *r)
{
    while (!__atomic_load_n(&r->done, __ATOMIC_SEQ_CST)) {
        bd_aio_poll(main_ctx, true);
    }
}

static BdIOThread *new_iothread(const char *id)
{
    g_autoptr(GError) err = NULL;
    BdIOThread *iot = bd_iothread_new(id, BD_AIO_POLL_MAX_NS_DEFAULT, 0, 0,
                                      &err);

    g_assert_no_error(err);
    g_assert_true(bd_iothread_find(id) == iot);
    return iot;
}

static void test_requests_in_iothread(void)
{
    BdIOThread *iot = new_iothread("io0");
    BdAioContext *ctx = bd_iothread_get_aio_context(iot);
    BdNode *node = open_ctx_node("n");
    g_autoptr(GError) err = NULL;
    BdBlockBackend *blk;
    Read r = { 0 };

    g_assert_true(bd_node_set_aio_context(node, ctx, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(bd_node_get_aio_context(node) == ctx);
    g_assert_cmpint(state(node)->detaches, ==, 1);
    g_assert_cmpint(state(node)->attaches, ==, 1);
    g_assert_true(state(node)->attached == ctx);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 1);

    /* moving where it already is changes nothing */
    g_assert_true(bd_node_set_aio_context(node, ctx, NULL, &err));
    g_assert_cmpint(state(node)->attaches, ==, 1);

    blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ, BD_PERM_ALL);
    g_assert_true(bd_blk_insert(blk, node, &err));
    r.blk = blk;
    read_start(&r, ctx);
    read_wait(&r);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpuint(r.buf[0], ==, 0xa5);
    g_assert_true(state(node)->read_ctx == ctx);

    /* a backend's node does not move without its user */
    g_assert_false(bd_node_set_aio_context(node, main_ctx, NULL, &err));
    g_assert_cmpstr(err->message, ==,
                    "Cannot change iothread of active block backend");
    g_clear_error(&err);
    g_assert_true(bd_node_get_aio_context(node) == ctx);
    bd_blk_unref(blk);

    /* back to the main loop */
    g_assert_true(bd_node_set_aio_context(node, main_ctx, NULL, &err));
    g_assert_true(state(node)->attached == main_ctx);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 0);
    delete_node(node);
    bd_iothread_destroy(iot);
    g_assert_null(bd_iothread_find("io0"));
}

static void test_drain_across_threads(void)
{
    BdIOThread *iot = new_iothread("io1");
    BdAioContext *ctx = bd_iothread_get_aio_context(iot);
    BdNode *node = open_ctx_node("n");
    g_autoptr(GError) err = NULL;
    BdBlockBackend *blk;
    Read r = { 0 };

    g_assert_true(bd_node_set_aio_context(node, ctx, NULL, &err));
    blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ, BD_PERM_ALL);
    g_assert_true(bd_blk_insert(blk, node, &err));
    state(node)->delay_ns = 20 * 1000 * 1000;
    r.blk = blk;
    read_start(&r, ctx);
    while (!__atomic_load_n(&node->in_flight, __ATOMIC_SEQ_CST)) {
        g_usleep(1000);
    }
    /* the drain returns only once the IOThread finished the request */
    bd_node_drained_begin(node);
    g_assert_cmpint(__atomic_load_n(&state(node)->reads, __ATOMIC_SEQ_CST),
                    ==, 1);
    g_assert_cmpuint(__atomic_load_n(&node->in_flight, __ATOMIC_SEQ_CST),
                     ==, 0);
    bd_node_drained_end(node);
    read_wait(&r);
    g_assert_cmpint(r.ret, ==, 0);
    bd_blk_unref(blk);

    /* deleting a node in an IOThread releases its context */
    delete_node(node);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 0);
    bd_iothread_destroy(iot);
}

/* A filter on top of a child: the whole chain moves together. */
static const BdBlockDriver ctx_filter = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "test-ctx-filter",
    .description = "a filter over 'file'",
    .instance_size = sizeof(CtxState),
    .flags = BD_DRIVER_FILTER,
    .detach_aio_context = ctx_detach,
    .attach_aio_context = ctx_attach,
};

static bool filter_open(BdNode *node, JsonObject *opts, unsigned flags,
                        GError **errp)
{
    return bd_node_open_child(node, opts, "file", BD_CHILD_FILTERED |
                              BD_CHILD_PRIMARY, false, errp) != NULL;
}

static void test_chain_moves_together(void)
{
    BdIOThread *iot = new_iothread("io2");
    BdAioContext *ctx = bd_iothread_get_aio_context(iot);
    BdBlockDriver filter = ctx_filter;
    BdNode *child = open_ctx_node("c");
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(GError) err = NULL;
    BdNode *parent, *parent2;

    filter.open = filter_open;
    json_object_set_string_member(opts, "file", "c");
    parent = bd_node_open_driver(&filter, "p", opts, &err);
    g_assert_no_error(err);

    /* moving the child takes its parent along */
    g_assert_true(bd_node_set_aio_context(child, ctx, NULL, &err));
    g_assert_true(bd_node_get_aio_context(parent) == ctx);
    g_assert_true(state(parent)->attached == ctx);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 2);

    /* a new parent of a node in an IOThread opens into the IOThread */
    parent2 = bd_node_open_driver(&filter, "p2", opts, &err);
    g_assert_no_error(err);
    g_assert_true(bd_node_get_aio_context(parent2) == ctx);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 3);

    g_assert_true(bd_node_set_aio_context(parent, main_ctx, NULL, &err));
    g_assert_true(bd_node_get_aio_context(child) == main_ctx);
    g_assert_true(bd_node_get_aio_context(parent2) == main_ctx);
    g_assert_cmpuint(bd_aio_context_get_users(ctx), ==, 0);
    delete_node(parent2);
    delete_node(parent);
    delete_node(child);
    bd_iothread_destroy(iot);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    g_test_add_func("/block-aio-move/requests-in-iothread",
                    test_requests_in_iothread);
    g_test_add_func("/block-aio-move/drain-across-threads",
                    test_drain_across_threads);
    g_test_add_func("/block-aio-move/chain", test_chain_moves_together);
    return g_test_run();
}
