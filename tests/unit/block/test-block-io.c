/*
 * The request layer, permissions and drained sections, with an in-process
 * memory driver that insists on its alignment and can be slowed down so
 * that requests overlap.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include <blockd/error.h>

#include "block/block-int.h"

#define MEM_SIZE (64 * 1024)

typedef struct MemState {
    uint8_t *data;
    uint32_t align;
    int64_t delay_ns;
    int preadv, pwritev, zeroes;
} MemState;

static BdAioContext *main_ctx;

static bool mem_open(BdNode *node, JsonObject *opts, unsigned flags,
                     GError **errp)
{
    MemState *s = bd_node_get_opaque(node);

    s->data = g_malloc0(MEM_SIZE);
    s->align = json_object_get_int_member_with_default(opts, "align", 1);
    s->delay_ns = json_object_get_int_member_with_default(opts, "delay", 0);
    return true;
}

static void mem_close(BdNode *node)
{
    MemState *s = bd_node_get_opaque(node);

    g_free(s->data);
}

static bool mem_limits(BdNode *node, BdBlockLimits *bl, GError **errp)
{
    MemState *s = bd_node_get_opaque(node);

    bl->request_alignment = s->align;
    return true;
}

static int64_t mem_getlength(BdNode *node)
{
    return MEM_SIZE;
}

static void check_aligned(MemState *s, int64_t offset, int64_t bytes)
{
    g_assert_cmpint(offset % s->align, ==, 0);
    g_assert_cmpint(bytes % s->align, ==, 0);
}

static int mem_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    MemState *s = bd_node_get_opaque(node);

    check_aligned(s, offset, bytes);
    g_assert_cmpuint(qiov->size, ==, bytes);
    s->preadv++;
    /* copy before sleeping: a read sees the data of its start */
    bd_iovec_from_buf(qiov, 0, s->data + offset, bytes);
    if (s->delay_ns) {
        bd_co_sleep_ns(s->delay_ns);
    }
    return 0;
}

static int mem_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    MemState *s = bd_node_get_opaque(node);

    check_aligned(s, offset, bytes);
    g_assert_cmpuint(qiov->size, ==, bytes);
    s->pwritev++;
    if (s->delay_ns) {
        bd_co_sleep_ns(s->delay_ns);
    }
    bd_iovec_to_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

static int mem_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                             BdRequestFlags flags)
{
    MemState *s = bd_node_get_opaque(node);

    check_aligned(s, offset, bytes);
    s->zeroes++;
    memset(s->data + offset, 0, bytes);
    return 0;
}

static const BdBlockDriver mem_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "test-mem",
    .description = "memory for tests",
    .instance_size = sizeof(MemState),
    .flags = BD_DRIVER_PROTOCOL,
    .open = mem_open,
    .close = mem_close,
    .refresh_limits = mem_limits,
    .co_getlength = mem_getlength,
    .co_preadv = mem_preadv,
    .co_pwritev = mem_pwritev,
    .co_pwrite_zeroes = mem_pwrite_zeroes,
};

static BdNode *open_mem(const char *name, const char *extra_json)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    BdNode *node;

    g_assert_true(json_parser_load_from_data(p, extra_json, -1, NULL));
    node = bd_node_open_driver(&mem_driver, name,
                               json_node_get_object(json_parser_get_root(p)),
                               &err);
    g_assert_no_error(err);
    return node;
}

static MemState *mem(BdNode *node)
{
    return bd_node_get_opaque(node);
}

static void delete_node(BdNode *node)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *name = g_strdup(bd_node_get_name(node));

    g_assert_true(bd_node_delete_by_monitor(name, &err));
    g_assert_no_error(err);
}

/* --- I/O in coroutines -------------------------------------------------- */

typedef struct Io {
    BdBlockBackend *blk;
    bool write;
    int64_t offset, bytes;
    uint8_t *buf;
    int ret;
    bool done;
} Io;

static void io_co(void *opaque)
{
    Io *io = opaque;
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, io->buf, io->bytes);
    io->ret = io->write
        ? bd_blk_co_pwritev(io->blk, io->offset, io->bytes, &qiov, 0)
        : bd_blk_co_preadv(io->blk, io->offset, io->bytes, &qiov, 0);
    io->done = true;
}

static void io_start(Io *io)
{
    bd_aio_coroutine_enter(main_ctx, bd_coroutine_create(io_co, io));
}

static void io_wait(Io *io)
{
    while (!io->done) {
        bd_aio_poll(main_ctx, true);
    }
}

static int io_run(BdBlockBackend *blk, bool write, int64_t offset,
                  int64_t bytes, uint8_t *buf)
{
    Io io = { blk, write, offset, bytes, buf, 0, false };

    io_start(&io);
    io_wait(&io);
    return io.ret;
}

static BdBlockBackend *writer(BdNode *node)
{
    g_autoptr(GError) err = NULL;
    BdBlockBackend *blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ |
                                     BD_PERM_WRITE, BD_PERM_ALL);

    g_assert_true(bd_blk_insert(blk, node, &err));
    g_assert_no_error(err);
    return blk;
}

/* --- tests -------------------------------------------------------------- */

static void test_unaligned_rmw(void)
{
    BdNode *node = open_mem("m", "{\"align\": 512}");
    BdBlockBackend *blk = writer(node);
    uint8_t buf[3] = { 1, 2, 3 };
    g_autofree uint8_t *all = g_malloc(2048);

    memset(mem(node)->data, 0xaa, MEM_SIZE);
    g_assert_cmpint(io_run(blk, true, 510, 3, buf), ==, 0);
    /* a write across a block boundary: both blocks read, then written */
    g_assert_cmpint(mem(node)->preadv, ==, 2);
    g_assert_cmpint(mem(node)->pwritev, ==, 1);
    g_assert_cmpint(io_run(blk, false, 0, 2048, all), ==, 0);
    g_assert_cmpint(all[509], ==, 0xaa);
    g_assert_cmpint(all[510], ==, 1);
    g_assert_cmpint(all[511], ==, 2);
    g_assert_cmpint(all[512], ==, 3);
    g_assert_cmpint(all[513], ==, 0xaa);
    /* an unaligned read inside one block */
    memset(buf, 0, sizeof(buf));
    g_assert_cmpint(io_run(blk, false, 511, 2, buf), ==, 0);
    g_assert_cmpint(buf[0], ==, 2);
    g_assert_cmpint(buf[1], ==, 3);
    bd_blk_unref(blk);
    delete_node(node);
}

/*
 * Two read-modify-writes of different bytes of the same block, with a
 * driver slow enough that they overlap: without serialisation the second
 * would write back the block as it was before the first.
 */
static void test_overlapping_rmw(void)
{
    BdNode *node = open_mem("m", "{\"align\": 4096, \"delay\": 2000000}");
    BdBlockBackend *blk = writer(node);
    uint8_t a[100], b[100], back[4096];
    Io io1 = { blk, true, 100, 100, a, 0, false };
    Io io2 = { blk, true, 1000, 100, b, 0, false };

    memset(a, 0x11, sizeof(a));
    memset(b, 0x22, sizeof(b));
    io_start(&io1);
    io_start(&io2);
    g_assert_false(io1.done);
    io_wait(&io1);
    io_wait(&io2);
    g_assert_cmpint(io1.ret, ==, 0);
    g_assert_cmpint(io2.ret, ==, 0);
    g_assert_cmpint(io_run(blk, false, 0, 4096, back), ==, 0);
    g_assert_cmpint(back[99], ==, 0);
    g_assert_cmpint(back[100], ==, 0x11);
    g_assert_cmpint(back[199], ==, 0x11);
    g_assert_cmpint(back[1000], ==, 0x22);
    g_assert_cmpint(back[1099], ==, 0x22);
    bd_blk_unref(blk);
    delete_node(node);
}

static void test_detect_zeroes(void)
{
    BdNode *off = open_mem("off", "{}");
    BdNode *on = open_mem("on", "{\"detect-zeroes\": \"on\"}");
    BdBlockBackend *b1 = writer(off), *b2 = writer(on);
    uint8_t zero[4096] = { 0 };

    g_assert_cmpint(io_run(b1, true, 0, 4096, zero), ==, 0);
    g_assert_cmpint(mem(off)->pwritev, ==, 1);
    g_assert_cmpint(mem(off)->zeroes, ==, 0);
    g_assert_cmpint(io_run(b2, true, 0, 4096, zero), ==, 0);
    g_assert_cmpint(mem(on)->pwritev, ==, 0);
    g_assert_cmpint(mem(on)->zeroes, ==, 1);
    zero[17] = 1;
    g_assert_cmpint(io_run(b2, true, 0, 4096, zero), ==, 0);
    g_assert_cmpint(mem(on)->pwritev, ==, 1);
    bd_blk_unref(b1);
    bd_blk_unref(b2);
    delete_node(off);
    delete_node(on);
}

static void test_read_only(void)
{
    BdNode *node = open_mem("ro", "{\"read-only\": true}");
    BdBlockBackend *blk = bd_blk_new(NULL, BD_PERM_WRITE, BD_PERM_ALL);
    BdBlockBackend *rd = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ,
                                    BD_PERM_ALL);
    g_autoptr(GError) err = NULL;
    uint8_t buf[512];

    g_assert_false(bd_blk_insert(blk, node, &err));
    g_assert_cmpstr(err->message, ==, "Block node is read-only");
    g_assert_true(bd_blk_insert(rd, node, NULL));
    g_assert_cmpint(io_run(rd, false, 0, 512, buf), ==, 0);
    /* the backend did not take write: refused before the node */
    g_assert_cmpint(io_run(rd, true, 0, 512, buf), ==, -EPERM);
    g_assert_cmpint(mem(node)->pwritev, ==, 0);
    bd_blk_unref(blk);
    bd_blk_unref(rd);
    delete_node(node);
}

static void test_eof(void)
{
    BdNode *node = open_mem("m", "{}");
    BdBlockBackend *blk = writer(node);
    uint8_t buf[512] = { 0 };

    g_assert_cmpint(io_run(blk, true, MEM_SIZE - 256, 512, buf), ==, -EIO);
    g_assert_cmpint(io_run(blk, false, MEM_SIZE, 1, buf), ==, -EIO);
    g_assert_cmpint(io_run(blk, true, MEM_SIZE - 512, 512, buf), ==, 0);
    bd_blk_unref(blk);
    delete_node(node);
}

static void test_permission_conflict(void)
{
    BdNode *node = open_mem("m", "{}");
    BdBlockBackend *a = bd_blk_new("a", BD_PERM_CONSISTENT_READ |
                                   BD_PERM_WRITE, BD_PERM_CONSISTENT_READ);
    BdBlockBackend *b = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ |
                                   BD_PERM_WRITE, BD_PERM_ALL);
    g_autoptr(GError) err = NULL;

    g_assert_true(bd_blk_insert(a, node, NULL));
    g_assert_false(bd_blk_insert(b, node, &err));
    g_assert_cmpstr(err->message, ==,
                    "Permission conflict on node 'm': permissions 'write' "
                    "are both required by an unnamed block device (uses "
                    "node 'm' as 'root' child) and unshared by block device "
                    "'a' (uses node 'm' as 'root' child).");
    /* the refused edge left nothing behind */
    g_assert_cmpuint(node->parents->len, ==, 1);
    g_assert_cmpuint(node->perm, ==, BD_PERM_CONSISTENT_READ |
                     BD_PERM_WRITE);
    g_clear_error(&err);
    /* in use by a backend: blockdev-del refuses */
    g_assert_false(bd_node_delete_by_monitor("m", &err));
    g_assert_cmpstr(err->message, ==, "Node m is in use");
    bd_blk_unref(a);
    bd_blk_unref(b);
    delete_node(node);
}

static void test_drain(void)
{
    BdNode *node = open_mem("m", "{\"delay\": 5000000}");
    BdBlockBackend *blk = writer(node);
    uint8_t buf[512], buf2[512];
    Io io = { blk, false, 0, 512, buf, 0, false };
    Io io2 = { blk, false, 512, 512, buf2, 0, false };

    io_start(&io);
    g_assert_false(io.done);
    bd_node_drained_begin(node);
    g_assert_true(io.done);
    g_assert_cmpuint(node->in_flight, ==, 0);
    /* a new request waits until the drained section ends */
    io_start(&io2);
    for (int i = 0; i < 5; i++) {
        bd_aio_poll(main_ctx, false);
    }
    g_assert_false(io2.done);
    g_assert_cmpint(mem(node)->preadv, ==, 1);
    bd_node_drained_end(node);
    io_wait(&io2);
    g_assert_cmpint(io2.ret, ==, 0);
    bd_blk_unref(blk);
    delete_node(node);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    g_test_add_func("/block-io/unaligned-rmw", test_unaligned_rmw);
    g_test_add_func("/block-io/overlapping-rmw", test_overlapping_rmw);
    g_test_add_func("/block-io/detect-zeroes", test_detect_zeroes);
    g_test_add_func("/block-io/read-only", test_read_only);
    g_test_add_func("/block-io/eof", test_eof);
    g_test_add_func("/block-graph/permission-conflict",
                    test_permission_conflict);
    g_test_add_func("/block-graph/drain", test_drain);
    return g_test_run();
}
