/*
 * The block-file plugin as the daemon uses it: the real block-file.so,
 * found through the plugin registry, opened as a node from BlockdevOptions
 * and driven through a BlockBackend and the request layer in each aio
 * mode: data round trips, unaligned requests under cache.direct=on, write
 * zeroes and discard (holes show in block status), truncate with each
 * preallocation mode, and image locks that a second node of the same file
 * and qemu-img both see.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "aio/aio-context.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

typedef struct Fixture {
    char *dir;
    char *path;
} Fixture;

#define SIZE (4 * 1024 * 1024)

static void setup(Fixture *f, gconstpointer data)
{
    GError *err = NULL;
    int fd;

    f->dir = g_dir_make_tmp("blockd-test-file-node-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "img", NULL);
    fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, SIZE), ==, 0);
    close(fd);
}

static void teardown(Fixture *f, gconstpointer data)
{
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* A node from BlockdevOptions given as JSON with @path substituted. */
static BdNode *open_node(const char *name, const char *path,
                         const char *extra, GError **errp)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"file\", \"node-name\": \"%s\", \"filename\": \"%s\""
        "%s%s}", name, path, extra ? ", " : "", extra ? extra : "");
    g_autoptr(JsonParser) p = json_parser_new();

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    return bd_node_open(json_node_get_object(json_parser_get_root(p)), true,
                        errp);
}

static void delete_node(const char *name)
{
    GError *err = NULL;

    g_assert_true(bd_node_delete_by_monitor(name, &err));
    g_assert_no_error(err);
}

static BdBlockBackend *backend(BdNode *node, uint64_t perm, uint64_t shared,
                               GError **errp)
{
    BdBlockBackend *blk = bd_blk_new(NULL, perm, shared);

    if (!bd_blk_insert(blk, node, errp)) {
        bd_blk_unref(blk);
        return NULL;
    }
    return blk;
}

static void drop_backend(BdBlockBackend *blk)
{
    bd_blk_remove(blk);
    bd_blk_unref(blk);
}

/* --- requests in a coroutine -------------------------------------------- */

typedef struct Req {
    BdBlockBackend *blk;
    BdNode *node;
    enum { R_READ, R_WRITE, R_ZEROES, R_DISCARD, R_FLUSH, R_STATUS,
           R_TRUNCATE } op;
    int64_t offset, bytes;
    uint8_t *buf;
    BdRequestFlags flags;
    BdPreallocMode prealloc;
    int64_t pnum;
    GError *err;
    int ret;
} Req;

static void req_co(void *opaque)
{
    Req *r = opaque;
    BdIOVector qiov;
    int64_t map;
    BdNode *file;

    switch (r->op) {
    case R_READ:
    case R_WRITE:
        bd_iovec_init_buf(&qiov, r->buf, r->bytes);
        r->ret = r->op == R_WRITE
            ? bd_blk_co_pwritev(r->blk, r->offset, r->bytes, &qiov, 0)
            : bd_blk_co_preadv(r->blk, r->offset, r->bytes, &qiov, 0);
        break;
    case R_ZEROES:
        r->ret = bd_blk_co_pwrite_zeroes(r->blk, r->offset, r->bytes,
                                         r->flags);
        break;
    case R_DISCARD:
        r->ret = bd_blk_co_pdiscard(r->blk, r->offset, r->bytes);
        break;
    case R_FLUSH:
        r->ret = bd_blk_co_flush(r->blk);
        break;
    case R_STATUS:
        r->ret = bd_node_co_block_status(r->node, true, r->offset, r->bytes,
                                         &r->pnum, &map, &file);
        /* The driver's part (the core adds ALLOCATED and EOF). */
        if (r->ret > 0) {
            r->ret &= BD_BLOCK_DATA | BD_BLOCK_ZERO | BD_BLOCK_OFFSET_VALID;
        }
        break;
    case R_TRUNCATE:
        r->ret = bd_node_co_truncate(r->node, r->offset, true, r->prealloc,
                                     0, &r->err);
        break;
    }
}

static int run(Req *r)
{
    bd_run_co(req_co, r);
    return r->ret;
}

/* --- tests ---------------------------------------------------------------- */

/*
 * Each aio mode: patterns written at odd offsets and lengths (the request
 * layer aligns them for cache.direct) read back, and flush works.
 */
static void test_io(Fixture *f, gconstpointer data)
{
    const char *extra = data;
    GError *err = NULL;
    BdNode *node = open_node("n", f->path, extra, &err);
    BdBlockBackend *blk;
    uint8_t *wbuf = g_malloc(70000), *rbuf = g_malloc(70000);

    g_assert_no_error(err);
    blk = backend(node, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                  BD_PERM_ALL, &err);
    g_assert_no_error(err);
    for (int i = 0; i < 70000; i++) {
        wbuf[i] = i * 7 + 3;
    }
    static const int64_t offsets[] = { 0, 4096, 777, 1048575, SIZE - 70000 };
    for (size_t i = 0; i < G_N_ELEMENTS(offsets); i++) {
        Req w = { .blk = blk, .op = R_WRITE, .offset = offsets[i],
                  .bytes = 70000, .buf = wbuf };
        Req r = { .blk = blk, .op = R_READ, .offset = offsets[i],
                  .bytes = 70000, .buf = rbuf };

        g_assert_cmpint(run(&w), ==, 0);
        memset(rbuf, 0, 70000);
        g_assert_cmpint(run(&r), ==, 0);
        g_assert_cmpmem(rbuf, 70000, wbuf, 70000);
    }
    Req fl = { .blk = blk, .op = R_FLUSH };
    g_assert_cmpint(run(&fl), ==, 0);

    /* The data is in the file itself. */
    {
        g_autofree char *contents = NULL;
        gsize len;

        g_assert_true(g_file_get_contents(f->path, &contents, &len, NULL));
        g_assert_cmpuint(len, ==, SIZE);
        g_assert_cmpmem(contents + SIZE - 70000, 70000, wbuf, 70000);
    }
    drop_backend(blk);
    delete_node("n");
    g_free(wbuf);
    g_free(rbuf);
}

/* Write zeroes (with and without unmap) and discard leave holes. */
static void test_zeroes_discard_status(Fixture *f, gconstpointer data)
{
    GError *err = NULL;
    BdNode *node = open_node("z", f->path, "\"discard\": \"unmap\"", &err);
    BdBlockBackend *blk;
    uint8_t *buf = g_malloc(SIZE);
    struct stat st;

    g_assert_no_error(err);
    blk = backend(node, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                  BD_PERM_ALL, &err);
    g_assert_no_error(err);
    memset(buf, 0xcc, SIZE);
    Req w = { .blk = blk, .op = R_WRITE, .offset = 0, .bytes = SIZE,
              .buf = buf };
    g_assert_cmpint(run(&w), ==, 0);
    Req fl = { .blk = blk, .op = R_FLUSH };
    g_assert_cmpint(run(&fl), ==, 0);

    /* Whole file data. */
    Req s = { .node = node, .op = R_STATUS, .offset = 0, .bytes = SIZE };
    g_assert_cmpint(run(&s), ==, BD_BLOCK_DATA | BD_BLOCK_OFFSET_VALID);
    g_assert_cmpint(s.pnum, ==, SIZE);

    /* Zeroes with unmap punch a hole at 1 MiB. */
    Req z = { .blk = blk, .op = R_ZEROES, .offset = 1 << 20,
              .bytes = 1 << 20, .flags = BD_REQ_MAY_UNMAP };
    g_assert_cmpint(run(&z), ==, 0);
    s = (Req) { .node = node, .op = R_STATUS, .offset = 1 << 20,
                .bytes = SIZE - (1 << 20) };
    g_assert_cmpint(run(&s), ==, BD_BLOCK_ZERO | BD_BLOCK_OFFSET_VALID);
    g_assert_cmpint(s.pnum, ==, 1 << 20);

    /* Zeroes without unmap: allocated zeroes (ZERO_RANGE). */
    Req z2 = { .blk = blk, .op = R_ZEROES, .offset = 0, .bytes = 65536 };
    g_assert_cmpint(run(&z2), ==, 0);

    /* Discard the last MiB: a hole up to end of file. */
    Req d = { .blk = blk, .op = R_DISCARD, .offset = 3 << 20,
              .bytes = 1 << 20 };
    g_assert_cmpint(run(&d), ==, 0);
    s = (Req) { .node = node, .op = R_STATUS, .offset = 3 << 20,
                .bytes = 1 << 20 };
    g_assert_cmpint(run(&s), ==, BD_BLOCK_ZERO | BD_BLOCK_OFFSET_VALID);

    /* And everything reads as the file says. */
    Req r = { .blk = blk, .op = R_READ, .offset = 0, .bytes = SIZE,
              .buf = buf };
    g_assert_cmpint(run(&r), ==, 0);
    for (int i = 0; i < SIZE; i++) {
        bool zero = i < 65536 || (i >= (1 << 20) && i < (2 << 20)) ||
                    i >= (3 << 20);
        if (buf[i] != (zero ? 0 : 0xcc)) {
            g_error("byte %d is 0x%x", i, buf[i]);
        }
    }
    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_assert_cmpint(st.st_blocks * 512, <=, 2 * 1024 * 1024 + 65536);
    drop_backend(blk);
    delete_node("z");
    g_free(buf);
}

/* Truncate: off, falloc and full grow the file; shrinking with
 * preallocation is refused as QEMU refuses it. */
static void test_truncate(Fixture *f, gconstpointer data)
{
    GError *err = NULL;
    BdNode *node = open_node("t", f->path, NULL, &err);
    BdBlockBackend *blk;
    struct stat st;

    g_assert_no_error(err);
    blk = backend(node, BD_PERM_CONSISTENT_READ | BD_PERM_RESIZE,
                  BD_PERM_ALL, &err);
    g_assert_no_error(err);
    Req t = { .node = node, .op = R_TRUNCATE, .offset = 8 << 20,
              .prealloc = BD_PREALLOC_OFF };
    g_assert_cmpint(run(&t), ==, 0);
    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 8 << 20);

    t = (Req) { .node = node, .op = R_TRUNCATE, .offset = 10 << 20,
                .prealloc = BD_PREALLOC_FALLOC };
    g_assert_cmpint(run(&t), ==, 0);
    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 10 << 20);
    g_assert_cmpint(st.st_blocks * 512, >=, 2 << 20);

    t = (Req) { .node = node, .op = R_TRUNCATE, .offset = 12 << 20,
                .prealloc = BD_PREALLOC_FULL };
    g_assert_cmpint(run(&t), ==, 0);
    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 12 << 20);
    g_assert_cmpint(st.st_blocks * 512, >=, 4 << 20);

    t = (Req) { .node = node, .op = R_TRUNCATE, .offset = 1 << 20,
                .prealloc = BD_PREALLOC_FULL };
    g_assert_cmpint(run(&t), ==, -ENOTSUP);
    g_assert_cmpstr(t.err->message, ==,
                    "Cannot use preallocation for shrinking files");
    g_clear_error(&t.err);
    t = (Req) { .node = node, .op = R_TRUNCATE, .offset = 1 << 20,
                .prealloc = BD_PREALLOC_METADATA };
    g_assert_cmpint(run(&t), ==, -ENOTSUP);
    g_clear_error(&t.err);
    drop_backend(blk);
    delete_node("t");
}

/*
 * Two nodes of one file are two open file descriptions: a writer on one
 * that does not share write keeps the other from writing, through the
 * lock bytes alone (the graph does not know they are the same file);
 * locking=off opts out; and qemu-img sees the writer like a QEMU one.
 */
static void test_locking(Fixture *f, gconstpointer data)
{
    GError *err = NULL;
    BdNode *a = open_node("a", f->path, NULL, &err);
    BdNode *b = open_node("b", f->path, NULL, &err);
    BdNode *c = open_node("c", f->path, "\"locking\": \"off\"", &err);
    BdBlockBackend *wa, *wb;
    g_autofree char *out = NULL, *errout = NULL;
    int status;

    g_assert_no_error(err);
    wa = backend(a, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                 BD_PERM_CONSISTENT_READ | BD_PERM_WRITE_UNCHANGED, &err);
    g_assert_no_error(err);
    wb = backend(b, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE, BD_PERM_ALL,
                 &err);
    g_assert_null(wb);
    g_assert_cmpstr(err->message, ==, "Failed to get \"write\" lock");
    g_clear_error(&err);
    wb = backend(c, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE, BD_PERM_ALL,
                 &err);
    g_assert_no_error(err);
    drop_backend(wb);

    /*
     * A qcow2 image held the same way: qemu-img info (which does not share
     * write for qcow2) refuses it exactly as it refuses a QEMU writer.
     */
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    g_assert_nonnull(qemu_img);     /* the test command installs it */
    {
        g_autofree char *qcow2 = g_build_filename(f->dir, "q.qcow2", NULL);
        g_autofree char *expected = g_strdup_printf(
            "qemu-img: Could not open '%s': Failed to get shared \"write\" "
            "lock\nIs another process using the image [%s]?\n", qcow2, qcow2);
        const char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                 qcow2, "1M", NULL };
        const char *info[] = { "qemu-img", "info", qcow2, NULL };
        BdBlockBackend *wq;
        BdNode *q;

        g_assert_true(g_spawn_sync(NULL, (char **)create, NULL,
                                   G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                                   NULL, &status, NULL));
        g_assert_cmpint(status, ==, 0);
        q = open_node("q", qcow2, NULL, &err);
        g_assert_no_error(err);
        wq = backend(q, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                     BD_PERM_ALL & ~BD_PERM_RESIZE, &err);
        g_assert_no_error(err);
        g_assert_true(g_spawn_sync(NULL, (char **)info, NULL,
                                   G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                                   &errout, &status, NULL));
        g_assert_cmpint(status, !=, 0);
        g_assert_cmpstr(errout, ==, expected);
        drop_backend(wq);
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&errout, g_free);
        g_assert_true(g_spawn_sync(NULL, (char **)info, NULL,
                                   G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                                   &errout, &status, NULL));
        g_assert_cmpint(status, ==, 0);
        delete_node("q");
        g_unlink(qcow2);
    }
    drop_backend(wa);
    /* Released: b may write now. */
    wb = backend(b, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE, BD_PERM_ALL,
                 &err);
    g_assert_no_error(err);
    drop_backend(wb);
    delete_node("a");
    delete_node("b");
    delete_node("c");
}

int main(int argc, char **argv)
{
    char **dirs;

    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);

    static const struct {
        const char *name;
        const char *extra;
    } modes[] = {
        { "threads", NULL },
        { "threads-direct", "\"cache\": {\"direct\": true}" },
        { "native", "\"aio\": \"native\", \"cache\": {\"direct\": true}" },
        { "io_uring", "\"aio\": \"io_uring\"" },
        { "io_uring-direct",
          "\"aio\": \"io_uring\", \"cache\": {\"direct\": true}" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autofree char *path = g_strdup_printf("/block-file/node/io/%s",
                                                modes[i].name);
        g_test_add(path, Fixture, modes[i].extra, setup, test_io, teardown);
    }
    g_test_add("/block-file/node/zeroes-discard-status", Fixture, NULL,
               setup, test_zeroes_discard_status, teardown);
    g_test_add("/block-file/node/truncate", Fixture, NULL, setup,
               test_truncate, teardown);
    g_test_add("/block-file/node/locking", Fixture, NULL, setup,
               test_locking, teardown);
    return g_test_run();
}
