/*
 * Zero-copy reads (bd_blk_co_pread_to_fd()) through the real block-file
 * and block-raw plugins: the bytes that arrive in a non-blocking pipe are
 * the image's, at raw's offset; a full pipe gives partial transfers and
 * -EAGAIN; and every case the request layer or a driver cannot serve
 * answers -ENOTSUP without moving anything (cache.direct=on, a range not
 * in the page cache, a driver without the callback), or -EIO beyond the
 * end.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "aio/aio-context.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define SIZE (4 * 1024 * 1024)
#define RAW_OFFSET 4096

typedef struct Fixture {
    char *dir;
    char *path;
    uint8_t *data;              /* the image's contents */
} Fixture;

/*
 * A private directory (0700) under @parent, or the default temporary
 * directory for NULL, with a SIZE-byte image of a pattern.
 */
static void make_image(Fixture *f, const char *parent)
{
    g_autofree char *tmpl = g_build_filename(parent ? parent
                                                    : g_get_tmp_dir(),
                                             "blockd-test-to-fd-XXXXXX",
                                             NULL);
    int fd;

    f->dir = g_mkdtemp_full(g_steal_pointer(&tmpl), 0700);
    g_assert_nonnull(f->dir);
    f->path = g_build_filename(f->dir, "img", NULL);
    f->data = g_malloc(SIZE);
    for (int i = 0; i < SIZE; i++) {
        f->data[i] = (i * 2654435761u) >> 13;
    }
    fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, f->data, SIZE), ==, SIZE);
    close(fd);
}

static void setup_tmpfs(Fixture *f, gconstpointer data)
{
    make_image(f, "/dev/shm");
}

/* A disk file system: the build tree's, when the temporary one is tmpfs. */
static void setup_disk(Fixture *f, gconstpointer data)
{
    struct statfs sfs;

    g_assert_cmpint(statfs(g_get_tmp_dir(), &sfs), ==, 0);
    make_image(f, sfs.f_type == TMPFS_MAGIC ? "." : NULL);
    g_assert_cmpint(statfs(f->dir, &sfs), ==, 0);
    g_assert_cmpint(sfs.f_type, !=, TMPFS_MAGIC);
}

static void teardown(Fixture *f, gconstpointer data)
{
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
    g_free(f->data);
}

static BdNode *open_json(const char *json)
{
    g_autoptr(JsonParser) p = json_parser_new();
    GError *err = NULL;
    BdNode *node;

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    node = bd_node_open(json_node_get_object(json_parser_get_root(p)), true,
                        &err);
    g_assert_no_error(err);
    return node;
}

/* raw (with @raw_extra) over file (with @file_extra), behind a backend. */
static BdBlockBackend *open_raw(Fixture *f, const char *raw_extra,
                                const char *file_extra)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"raw\", \"node-name\": \"r\"%s, \"file\": "
        "{\"driver\": \"file\", \"node-name\": \"f\", \"filename\": \"%s\"%s}}",
        raw_extra, f->path, file_extra);
    BdNode *node = open_json(json);
    BdBlockBackend *blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ,
                                     BD_PERM_ALL);
    GError *err = NULL;

    g_assert_true(bd_blk_insert(blk, node, &err));
    g_assert_no_error(err);
    return blk;
}

static void close_all(BdBlockBackend *blk, const char *node_name)
{
    GError *err = NULL;

    bd_blk_remove(blk);
    bd_blk_unref(blk);
    g_assert_true(bd_node_delete_by_monitor(node_name, &err));
    g_assert_no_error(err);
}

typedef struct Call {
    BdBlockBackend *blk;
    int64_t offset, bytes;
    int fd;
    int64_t ret;
} Call;

static void call_co(void *opaque)
{
    Call *c = opaque;

    c->ret = bd_blk_co_pread_to_fd(c->blk, c->offset, c->bytes, c->fd, 0);
}

static int64_t to_fd(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     int fd)
{
    Call c = { blk, offset, bytes, fd, 0 };

    bd_run_co(call_co, &c);
    return c.ret;
}

/* A non-blocking pipe: [0] read end, [1] write end. */
static void make_pipe(int p[2])
{
    g_assert_cmpint(pipe2(p, O_NONBLOCK | O_CLOEXEC), ==, 0);
}

static size_t drain_pipe(int fd, uint8_t *buf, size_t room)
{
    size_t got = 0;
    ssize_t n;

    while (got < room && (n = read(fd, buf + got, room - got)) > 0) {
        got += n;
    }
    return got;
}

/*
 * @bytes at @offset of the raw node into a pipe that holds less: the
 * transfers are partial, a full pipe answers -EAGAIN, and what comes out
 * is the file's bytes at raw's offset.  Returns how many calls it took.
 */
static int transfer_all(Fixture *f, BdBlockBackend *blk, int64_t offset,
                        int64_t bytes, int64_t host_offset)
{
    g_autofree uint8_t *got = g_malloc(bytes);
    int64_t sent = 0;
    size_t recvd = 0;
    int calls = 0, p[2];
    bool saw_eagain = false;

    make_pipe(p);
    while (sent < bytes) {
        int64_t n = to_fd(blk, offset + sent, bytes - sent, p[1]);

        calls++;
        if (n == -EAGAIN) {
            saw_eagain = true;
            recvd += drain_pipe(p[0], got + recvd, bytes - recvd);
            continue;
        }
        g_assert_cmpint(n, >, 0);
        g_assert_cmpint(n, <=, bytes - sent);
        sent += n;
    }
    recvd += drain_pipe(p[0], got + recvd, bytes - recvd);
    g_assert_cmpint(recvd, ==, bytes);
    g_assert_cmpmem(got, bytes, f->data + host_offset, bytes);
    if (bytes > 4 * 65536) {
        /* a pipe holds 64 KiB unless someone changed the default */
        g_assert_true(saw_eagain);
    }
    close(p[0]);
    close(p[1]);
    return calls;
}

/* tmpfs: raw without and with an offset, partial transfers, the check. */
static void test_tmpfs(Fixture *f, gconstpointer data)
{
    BdBlockBackend *blk = open_raw(f, "", "");
    BdNode *file = bd_node_find("f");
    uint64_t rd_ops = file->stats.rd_ops;
    int calls;

    g_assert_cmpint(to_fd(blk, 12345, 1 << 20, -1), ==, 0);
    calls = transfer_all(f, blk, 12345, 1 << 20, 12345);
    g_assert_cmpint(calls, >, 1);
    /* only the calls that moved bytes count as reads */
    g_assert_cmpuint(file->stats.rd_ops - rd_ops, <, calls);
    g_assert_cmpuint(file->stats.rd_ops, >, rd_ops);
    /* the whole range up to the end, and nothing beyond it */
    transfer_all(f, blk, SIZE - 300000, 300000, SIZE - 300000);
    g_assert_cmpint(to_fd(blk, SIZE - 4096, 8192, -1), ==, -EIO);
    g_assert_cmpint(to_fd(blk, -1, 10, -1), ==, -EIO);
    close_all(blk, "r");

    blk = open_raw(f, ", \"offset\": 4096, \"size\": 2097152", "");
    transfer_all(f, blk, 0, 1 << 20, RAW_OFFSET);
    transfer_all(f, blk, 777, 2097152 - 777, RAW_OFFSET + 777);
    /* the window's end, not the file's */
    g_assert_cmpint(to_fd(blk, 2097152 - 512, 1024, -1), ==, -EIO);
    close_all(blk, "r");
}

/* cache.direct=on bypasses the page cache: never zero-copy. */
static void test_direct(Fixture *f, gconstpointer data)
{
    BdBlockBackend *blk = open_raw(f, ", \"offset\": 4096",
                                   ", \"cache\": {\"direct\": true}");
    int p[2];

    make_pipe(p);
    g_assert_cmpint(to_fd(blk, 0, 65536, -1), ==, -ENOTSUP);
    g_assert_cmpint(to_fd(blk, 0, 65536, p[1]), ==, -ENOTSUP);
    /* nothing was written */
    g_assert_cmpint(read(p[0], f->data, 1), ==, -1);
    g_assert_cmpint(errno, ==, EAGAIN);
    close(p[0]);
    close(p[1]);
    close_all(blk, "r");
}

/*
 * On a disk file system, only what the page cache holds: a range dropped
 * from the cache answers -ENOTSUP (sendfile would wait for the disk),
 * and once read normally it goes zero-copy.
 */
static void test_page_cache(Fixture *f, gconstpointer data)
{
    BdBlockBackend *blk = open_raw(f, "", "");
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    int64_t check = 0;

    g_assert_cmpint(fd, >=, 0);
    /* written data is dirty at first: sync so that it can be dropped */
    g_assert_cmpint(fdatasync(fd), ==, 0);
    for (int i = 0; i < 100 && check != -ENOTSUP; i++) {
        g_assert_cmpint(posix_fadvise(fd, 0, SIZE, POSIX_FADV_DONTNEED),
                        ==, 0);
        check = to_fd(blk, 1 << 20, 1 << 20, -1);
    }
    g_assert_cmpint(check, ==, -ENOTSUP);
    /* a read brings the range into the cache */
    g_assert_cmpint(pread(fd, buf, 1 << 20, 1 << 20), ==, 1 << 20);
    g_assert_cmpint(to_fd(blk, 1 << 20, 1 << 20, -1), ==, 0);
    transfer_all(f, blk, 1 << 20, 1 << 20, 1 << 20);
    close(fd);
    close_all(blk, "r");
}

/* A driver that reads in its own way (null-co) has no zero-copy path. */
static void test_no_callback(void)
{
    BdNode *node = open_json("{\"driver\": \"null-co\", \"node-name\": "
                             "\"n\", \"size\": 1048576, "
                             "\"read-zeroes\": true}");
    BdBlockBackend *blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ,
                                     BD_PERM_ALL);
    GError *err = NULL;
    int p[2];

    g_assert_true(bd_blk_insert(blk, node, &err));
    make_pipe(p);
    g_assert_cmpint(to_fd(blk, 0, 65536, -1), ==, -ENOTSUP);
    g_assert_cmpint(to_fd(blk, 0, 65536, p[1]), ==, -ENOTSUP);
    close(p[0]);
    close(p[1]);
    close_all(blk, "n");
}

int main(int argc, char **argv)
{
    char **dirs;

    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);

    g_test_add("/block/pread-to-fd/tmpfs", Fixture, NULL, setup_tmpfs,
               test_tmpfs, teardown);
    g_test_add("/block/pread-to-fd/direct", Fixture, NULL, setup_disk,
               test_direct, teardown);
    g_test_add("/block/pread-to-fd/page-cache", Fixture, NULL, setup_disk,
               test_page_cache, teardown);
    g_test_add_func("/block/pread-to-fd/no-callback", test_no_callback);
    return g_test_run();
}
