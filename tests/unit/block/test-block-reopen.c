/*
 * blockdev-reopen's all-or-nothing rule and the write threshold, with an
 * in-process driver that counts its reopen callbacks and can be told to
 * refuse a reopen.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include <blockd/error.h>

#include "block/block-int.h"
#include "block/block-qmp.h"

#define DEV_SIZE (64 * 1024)

typedef struct DevState {
    int prepared, committed, aborted;
    int writes;
} DevState;

static int64_t dev_getlength(BdNode *node)
{
    return DEV_SIZE;
}

static int dev_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    DevState *s = bd_node_get_opaque(node);

    s->writes++;
    return 0;
}

/* Refuses a "fail": true option; anything else is accepted. */
static bool dev_reopen_prepare(BdNode *node, JsonObject *options,
                               void **state, GError **errp)
{
    DevState *s = bd_node_get_opaque(node);

    if (json_object_get_boolean_member_with_default(options, "fail",
                                                    false)) {
        bd_error_setg(errp, "refused");
        return false;
    }
    s->prepared++;
    *state = s;
    return true;
}

static void dev_reopen_commit(BdNode *node, void *state)
{
    ((DevState *)state)->committed++;
}

static void dev_reopen_abort(BdNode *node, void *state)
{
    ((DevState *)state)->aborted++;
}

static const BdBlockDriver dev_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "dev",
    .instance_size = sizeof(DevState),
    .flags = BD_DRIVER_PROTOCOL,
    .co_getlength = dev_getlength,
    .co_pwritev = dev_pwritev,
    .reopen_prepare = dev_reopen_prepare,
    .reopen_commit = dev_reopen_commit,
    .reopen_abort = dev_reopen_abort,
};

static BdNode *open_dev(const char *name)
{
    g_autoptr(GError) err = NULL;
    BdNode *node = bd_node_open_driver(&dev_driver, name, NULL, &err);

    g_assert_no_error(err);
    return node;
}

static JsonObject *parse_object(const char *json)
{
    g_autoptr(JsonParser) p = json_parser_new();

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

static bool reopen(const char *json, GError **errp)
{
    g_autoptr(JsonObject) args = parse_object(json);
    JsonNode *ret = NULL;

    return bd_qmp_blockdev_reopen(args, &ret, errp);
}

static void test_reopen_commit(void)
{
    g_autoptr(GError) err = NULL;
    BdNode *a = open_dev("a"), *b = open_dev("b");
    DevState *sa = bd_node_get_opaque(a), *sb = bd_node_get_opaque(b);

    g_assert_true(reopen("{\"options\": ["
                         "{\"driver\": \"dev\", \"node-name\": \"a\", "
                         "\"read-only\": true},"
                         "{\"driver\": \"dev\", \"node-name\": \"b\", "
                         "\"detect-zeroes\": \"on\"}]}", &err));
    g_assert_no_error(err);
    g_assert_true(a->read_only);
    g_assert_false(a->open_flags & BD_OPEN_RDWR);
    g_assert_cmpint(b->detect_zeroes, ==, BD_DETECT_ZEROES_ON);
    g_assert_cmpint(sa->committed, ==, 1);
    g_assert_cmpint(sb->committed, ==, 1);
    g_assert_cmpint(sa->aborted + sb->aborted, ==, 0);
    g_assert_true(bd_node_delete_by_monitor("a", NULL));
    g_assert_true(bd_node_delete_by_monitor("b", NULL));
}

/* The second node refuses: the first must be left exactly as it was. */
static void test_reopen_rollback(void)
{
    g_autoptr(GError) err = NULL;
    BdNode *a = open_dev("a"), *b = open_dev("b");
    DevState *sa = bd_node_get_opaque(a), *sb = bd_node_get_opaque(b);
    unsigned flags = a->open_flags;

    g_assert_false(reopen("{\"options\": ["
                          "{\"driver\": \"dev\", \"node-name\": \"a\", "
                          "\"read-only\": true, "
                          "\"cache\": {\"direct\": true}},"
                          "{\"driver\": \"dev\", \"node-name\": \"b\", "
                          "\"fail\": true}]}", &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, "refused");
    g_assert_false(a->read_only);
    g_assert_cmpuint(a->open_flags, ==, flags);
    g_assert_cmpint(sa->prepared, ==, 1);
    g_assert_cmpint(sa->aborted, ==, 1);
    g_assert_cmpint(sa->committed + sb->committed + sb->aborted, ==, 0);
    g_clear_error(&err);

    /* a permission failure after every prepare also rolls back */
    {
        BdBlockBackend *blk = bd_blk_new("w", BD_PERM_WRITE, BD_PERM_ALL);

        g_assert_true(bd_blk_insert(blk, b, NULL));
        g_assert_false(reopen("{\"options\": ["
                              "{\"driver\": \"dev\", \"node-name\": \"a\", "
                              "\"read-only\": true},"
                              "{\"driver\": \"dev\", \"node-name\": \"b\", "
                              "\"read-only\": true}]}", &err));
        /* QEMU 7.2's words for a writable node losing its writers */
        g_assert_cmpstr(err->message, ==, "Read-only block node 'b' "
                        "cannot support read-write users");
        g_assert_false(a->read_only);
        g_assert_false(b->read_only);
        g_assert_cmpint(sa->aborted, ==, 2);
        g_assert_cmpint(sb->aborted, ==, 1);
        g_assert_cmpint(sa->committed + sb->committed, ==, 0);
        bd_blk_unref(blk);
    }
    g_assert_true(bd_node_delete_by_monitor("a", NULL));
    g_assert_true(bd_node_delete_by_monitor("b", NULL));
}

static void test_reopen_refusals(void)
{
    g_autoptr(GError) err = NULL;
    BdNode *a = open_dev("a");

    g_assert_false(reopen("{\"options\": [{\"driver\": \"dev\"}]}", &err));
    g_assert_cmpstr(err->message, ==, "node-name not specified");
    g_clear_error(&err);
    g_assert_false(reopen("{\"options\": [{\"driver\": \"raw\", "
                          "\"node-name\": \"a\"}]}", &err));
    g_assert_cmpstr(err->message, ==, "Cannot change the option 'driver'");
    g_clear_error(&err);
    g_assert_false(reopen("{\"options\": [{\"driver\": \"dev\", "
                          "\"node-name\": \"a\", "
                          "\"force-share\": true, \"read-only\": true}]}",
                          &err));
    g_assert_cmpstr(err->message, ==,
                    "Cannot change the option 'force-share'");
    g_assert_false(a->read_only);
    g_assert_true(bd_node_delete_by_monitor("a", NULL));
}

typedef struct WriteCo {
    BdNode *node;
    int64_t offset, bytes;
    int ret;
} WriteCo;

static void write_co(void *opaque)
{
    WriteCo *w = opaque;
    g_autofree uint8_t *buf = g_malloc0(w->bytes);
    BdIOVector qiov;

    buf[0] = 1;     /* not all zero */
    bd_iovec_init_buf(&qiov, buf, w->bytes);
    w->ret = bd_node_co_pwritev(w->node, w->offset, w->bytes, &qiov, 0);
}

static void do_write(BdNode *node, int64_t offset, int64_t bytes)
{
    WriteCo w = { node, offset, bytes, -1 };

    bd_run_co(write_co, &w);
    g_assert_cmpint(w.ret, ==, 0);
}

static void test_write_threshold(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) args =
        parse_object("{\"node-name\": \"a\", \"write-threshold\": 8192}");
    g_autoptr(JsonObject) bad =
        parse_object("{\"node-name\": \"zz\", \"write-threshold\": 1}");
    BdNode *a = open_dev("a");
    DevState *s = bd_node_get_opaque(a);
    JsonNode *ret = NULL;

    g_assert_false(bd_qmp_block_set_write_threshold(bad, &ret, &err));
    g_assert_cmpstr(err->message, ==, "Device 'zz' not found");
    g_assert_true(bd_qmp_block_set_write_threshold(args, &ret, NULL));
    g_assert_cmpuint(a->write_threshold, ==, 8192);

    /* ending exactly at the threshold does not cross it */
    do_write(a, 4096, 4096);
    g_assert_cmpuint(a->write_threshold, ==, 8192);
    /* crossing disarms it, once */
    do_write(a, 8000, 1000);
    g_assert_cmpuint(a->write_threshold, ==, 0);
    do_write(a, 16384, 4096);
    g_assert_cmpuint(a->write_threshold, ==, 0);
    g_assert_cmpint(s->writes, ==, 3);

    /* re-armed, then disarmed by 0 */
    bd_node_set_write_threshold(a, 100);
    bd_node_set_write_threshold(a, 0);
    do_write(a, 0, 4096);
    g_assert_cmpuint(a->write_threshold, ==, 0);
    g_assert_true(bd_node_delete_by_monitor("a", NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    g_test_add_func("/block-reopen/commit", test_reopen_commit);
    g_test_add_func("/block-reopen/rollback", test_reopen_rollback);
    g_test_add_func("/block-reopen/refusals", test_reopen_refusals);
    g_test_add_func("/block-threshold/one-shot", test_write_threshold);
    return g_test_run();
}
