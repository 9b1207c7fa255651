/*
 * BlockBackends.
 *
 * Drained sections against requests from an IOThread: coroutines in an
 * IOThread send reads through a BlockBackend without pause while the main
 * loop drains and undrains the node over and over.  Once drained_begin
 * returned, no request may reach the driver until drained_end (requests
 * started before may, while drained_begin waits for them), and every
 * drain must return with the driver idle (the race QEMU closes with blk_inc_in_flight() before
 * blk_wait_while_drained()).
 *
 * BLOCK_IO_ERROR's data as qemu-storage-daemon 7.2 sends it: without
 * "nospace", even for ENOSPC.
 */
#include <errno.h>

#include <glib.h>

#include <blockd/error.h>
#include <blockd/iothread.h>

#include "block/block-int.h"

#define DISK_SIZE (64 * 1024)
#define WORKERS 8
#define DRAINS 20000

typedef struct RaceState {
    int active;                 /* atomic: requests inside the driver */
    bool drained;               /* atomic: between drained_begin's return
                                 * and drained_end */
    int violations;             /* atomic: requests seen while drained */
    int reads;                  /* atomic */
} RaceState;

static BdAioContext *main_ctx;

static int race_preadv(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    RaceState *s = bd_node_get_opaque(node);

    __atomic_add_fetch(&s->active, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->drained, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&s->violations, 1, __ATOMIC_SEQ_CST);
    }
    /* Every other request yields once, so some are in flight long. */
    if (__atomic_add_fetch(&s->reads, 1, __ATOMIC_SEQ_CST) & 1) {
        bd_co_sleep_ns(1000);
    }
    bd_iovec_memset(qiov, 0, 0x5a, bytes);
    __atomic_sub_fetch(&s->active, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int64_t race_getlength(BdNode *node)
{
    return DISK_SIZE;
}

static const BdBlockDriver race_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "test-race",
    .description = "checks that no request arrives while drained",
    .instance_size = sizeof(RaceState),
    .flags = BD_DRIVER_PROTOCOL,
    .co_getlength = race_getlength,
    .co_preadv = race_preadv,
};

typedef struct Worker {
    BdBlockBackend *blk;
    bool *stop;                 /* atomic */
    int *finished;              /* atomic */
    int errors;
} Worker;

static void worker_co(void *opaque)
{
    Worker *w = opaque;
    uint8_t buf[512];

    while (!__atomic_load_n(w->stop, __ATOMIC_SEQ_CST)) {
        BdIOVector qiov;

        bd_iovec_init_buf(&qiov, buf, sizeof(buf));
        if (bd_blk_co_preadv(w->blk, 0, sizeof(buf), &qiov, 0) < 0) {
            w->errors++;
        }
    }
    __atomic_add_fetch(w->finished, 1, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(main_ctx);
}

static void test_drain_race(void)
{
    g_autoptr(GError) err = NULL;
    BdIOThread *iot = bd_iothread_new("race0", BD_AIO_POLL_MAX_NS_DEFAULT,
                                      0, 0, &err);
    BdAioContext *ctx;
    BdNode *node;
    RaceState *s;
    BdBlockBackend *blk;
    Worker workers[WORKERS];
    bool stop = false;
    int finished = 0;
    int last_reads = 0, progressed = 0;

    g_assert_no_error(err);
    ctx = bd_iothread_get_aio_context(iot);
    node = bd_node_open_driver(&race_driver, "race", NULL, &err);
    g_assert_no_error(err);
    s = bd_node_get_opaque(node);
    g_assert_true(bd_node_set_aio_context(node, ctx, NULL, &err));
    blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ, BD_PERM_ALL);
    g_assert_true(bd_blk_insert(blk, node, &err));

    for (int i = 0; i < WORKERS; i++) {
        workers[i] = (Worker){ blk, &stop, &finished, 0 };
        bd_aio_co_enter(ctx, bd_coroutine_create(worker_co, &workers[i]));
    }
    for (int i = 0; i < DRAINS; i++) {
        int reads;

        bd_node_drained_begin(node);
        __atomic_store_n(&s->drained, true, __ATOMIC_SEQ_CST);
        g_assert_cmpint(__atomic_load_n(&s->active, __ATOMIC_SEQ_CST), ==,
                        0);
        reads = __atomic_load_n(&s->reads, __ATOMIC_SEQ_CST);
        progressed += reads != last_reads;
        last_reads = reads;
        /* Let the workers run into the drained node for a moment. */
        if (i % 64 == 0) {
            g_usleep(200);
        }
        g_assert_cmpint(__atomic_load_n(&s->active, __ATOMIC_SEQ_CST), ==,
                        0);
        __atomic_store_n(&s->drained, false, __ATOMIC_SEQ_CST);
        bd_node_drained_end(node);
    }
    __atomic_store_n(&stop, true, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) < WORKERS) {
        bd_aio_poll(main_ctx, true);
    }

    g_assert_cmpint(__atomic_load_n(&s->violations, __ATOMIC_SEQ_CST), ==,
                    0);
    /* The workers did run between the drains. */
    g_assert_cmpint(progressed, >, 0);
    for (int i = 0; i < WORKERS; i++) {
        g_assert_cmpint(workers[i].errors, ==, 0);
    }
    g_assert_cmpuint(node->in_flight, ==, 0);
    bd_blk_unref(blk);
    g_assert_true(bd_node_delete_by_monitor("race", &err));
    g_assert_no_error(err);
    bd_iothread_destroy(iot);
}

static void test_io_error_data(void)
{
    g_autoptr(GError) err = NULL;
    BdNode *node = bd_node_open_driver(&race_driver, "n0", NULL, &err);
    BdBlockBackend *blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ,
                                     BD_PERM_ALL);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
    g_autofree char *text = NULL;
    g_autofree char *want = NULL;
    JsonObject *data;

    g_assert_no_error(err);
    g_assert_true(bd_blk_insert(blk, node, &err));
    data = bd_blk_io_error_data(blk, false, ENOSPC);
    json_node_take_object(root, data);
    json_generator_set_root(gen, root);
    text = json_generator_to_data(gen, NULL);
    want = g_strdup_printf("{\"device\":\"\",\"node-name\":\"n0\","
                           "\"operation\":\"write\",\"action\":\"report\","
                           "\"reason\":\"%s\"}", g_strerror(ENOSPC));
    g_assert_cmpstr(text, ==, want);
    bd_blk_unref(blk);
    g_assert_true(bd_node_delete_by_monitor("n0", &err));
    g_assert_no_error(err);
}

/*
 * The public API a driver's co_create uses: bd_node_open_ref() finds a
 * node by name (one more reference) or opens one from options (its own
 * reference: the last unref closes it), and a backend made with
 * bd_blk_new() attaches to either.
 */
static void test_open_ref(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) by_name = json_node_new(JSON_NODE_VALUE);
    g_autoptr(JsonNode) missing = json_node_new(JSON_NODE_VALUE);
    g_autoptr(JsonNode) inline_opts = json_node_new(JSON_NODE_OBJECT);
    g_autoptr(JsonNode) anon_opts = json_node_new(JSON_NODE_OBJECT);
    JsonObject *o = json_object_new();
    BdNode *named, *ref, *fresh;
    BdBlockBackend *blk;
    char *anon_name;

    bd_block_register_test_driver(&race_driver);
    named = bd_node_open_driver(&race_driver, "n1", NULL, &err);
    g_assert_no_error(err);

    json_node_set_string(by_name, "n1");
    ref = bd_node_open_ref(by_name, &err);
    g_assert_no_error(err);
    g_assert_true(ref == named);
    g_assert_cmpint(named->refcnt, ==, 2);

    json_node_set_string(missing, "nope");
    g_assert_null(bd_node_open_ref(missing, &err));
    g_assert_cmpstr(err->message, ==,
                    "Cannot find device='nope' nor node-name='nope'");
    g_clear_error(&err);

    json_object_set_string_member(o, "driver", "test-race");
    json_object_set_string_member(o, "node-name", "inline");
    json_node_take_object(inline_opts, o);
    fresh = bd_node_open_ref(inline_opts, &err);
    g_assert_no_error(err);
    g_assert_true(bd_node_find("inline") == fresh);

    /* a backend holds its own reference while attached */
    blk = bd_blk_new(NULL, BD_PERM_WRITE | BD_PERM_RESIZE, BD_PERM_ALL);
    g_assert_true(bd_blk_insert(blk, fresh, &err));
    g_assert_no_error(err);
    g_assert_cmpint(fresh->refcnt, ==, 2);
    g_assert_true(bd_blk_get_node(blk) == fresh);
    bd_blk_remove(blk);
    g_assert_null(bd_blk_get_node(blk));
    g_assert_cmpint(fresh->refcnt, ==, 1);
    bd_blk_unref(blk);
    bd_blk_unref(NULL);
    /* the last reference closes the node and frees its name */
    bd_node_unref(fresh);
    g_assert_null(bd_node_find("inline"));

    /* without a node-name, one is generated */
    o = json_object_new();
    json_object_set_string_member(o, "driver", "test-race");
    json_node_take_object(anon_opts, o);
    fresh = bd_node_open_ref(anon_opts, &err);
    g_assert_no_error(err);
    anon_name = g_strdup(bd_node_get_name(fresh));
    g_assert_true(anon_name[0] == '#');
    g_assert_true(bd_node_find(anon_name) == fresh);
    bd_node_unref(fresh);
    g_assert_null(bd_node_find(anon_name));
    g_free(anon_name);

    bd_node_unref(ref);
    g_assert_cmpint(named->refcnt, ==, 1);
    g_assert_true(bd_node_delete_by_monitor("n1", &err));
    g_assert_no_error(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    g_test_add_func("/block-backend/drain-race", test_drain_race);
    g_test_add_func("/block-backend/io-error-data", test_io_error_data);
    g_test_add_func("/block-backend/open-ref", test_open_ref);
    return g_test_run();
}
