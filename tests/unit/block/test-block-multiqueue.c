/*
 * One node, requests from several AioContexts at once (what a
 * multi-threaded export does): the real block-file.so, with writers in
 * two IOThreads and the main loop issuing overlapping unaligned writes
 * (read-modify-write of shared blocks under cache.direct, so the
 * serialisation of tracked requests is what keeps them from losing each
 * other's bytes), reads checking what they see, drained sections from
 * the main loop while the IOThreads are busy, and the statistics.
 *
 * Each writer owns one slice of every block of the hot region: in round
 * r it writes its slice of each block (one unaligned request each) with
 * bytes derived from (writer, block, r).  Whatever the interleaving, the
 * end result is known exactly, and a lost update shows as a slice with
 * an older round's bytes.
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include <blockd/iothread.h>

#include "aio/aio-context.h"
#include "aio-test-util.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define SIZE (1024 * 1024)
#define NBLOCKS 16          /* the hot region: few blocks, much overlap */
#define NSLICES 8           /* slices per block = writers at most */
#define ROUNDS 40
#define PER_THREAD 2        /* writer coroutines per IOThread */
#define NTHREADS 2

typedef struct Shared {
    BdBlockBackend *blk;
    uint32_t align;         /* the node's request alignment */
    int finished;           /* atomic: writers done */
    int failures;           /* atomic: requests that failed */
    int bad_reads;          /* atomic: reads that saw impossible data */
} Shared;

typedef struct Writer {
    Shared *sh;
    int id;                 /* the slice it owns */
} Writer;

static uint8_t pattern(int writer, int block, int round)
{
    return (uint8_t)(writer * 37 + block * 11 + round * 5 + 1);
}

static bool all_equal(const uint8_t *buf, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != v) {
            return false;
        }
    }
    return true;
}

static void writer_co(void *opaque)
{
    Writer *w = opaque;
    Shared *sh = w->sh;
    size_t slice = sh->align / NSLICES;
    g_autofree uint8_t *buf = g_malloc(slice);
    g_autofree uint8_t *rbuf = g_malloc(slice);

    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NBLOCKS; i++) {
            /* writers walk the blocks in different orders */
            int block = (i * 5 + w->id * 3 + round) % NBLOCKS;
            int64_t off = (int64_t)block * sh->align + w->id * slice;
            BdIOVector qiov;

            memset(buf, pattern(w->id, block, round), slice);
            bd_iovec_init_buf(&qiov, buf, slice);
            if (bd_blk_co_pwritev(sh->blk, off, slice, &qiov, 0) < 0) {
                __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
            }
            /*
             * Our own slice: others' read-modify-writes of the block are
             * serialised with ours, so they carry our bytes along.
             */
            bd_iovec_init_buf(&qiov, rbuf, slice);
            if (bd_blk_co_preadv(sh->blk, off, slice, &qiov, 0) < 0) {
                __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
            } else if (!all_equal(rbuf, slice,
                                  pattern(w->id, block, round))) {
                __atomic_add_fetch(&sh->bad_reads, 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    __atomic_add_fetch(&sh->finished, 1, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(main_ctx);
}

typedef struct Spawn {
    Writer *writers;
    int count;
} Spawn;

static void spawn_bh(void *opaque)
{
    Spawn *sp = opaque;

    for (int i = 0; i < sp->count; i++) {
        bd_coroutine_enter(bd_coroutine_create(writer_co, &sp->writers[i]));
    }
}

static BdNode *open_node(const char *path, const char *extra, GError **errp)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"file\", \"node-name\": \"mq\", \"filename\": \"%s\""
        "%s%s}", path, extra ? ", " : "", extra ? extra : "");
    g_autoptr(JsonParser) p = json_parser_new();

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    return bd_node_open(json_node_get_object(json_parser_get_root(p)), true,
                        errp);
}

static void test_concurrent(gconstpointer data)
{
    const char *extra = data;
    GError *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("blockd-test-mq-XXXXXX", &err);
    g_autofree char *path = NULL;
    g_autofree uint8_t *image = NULL;
    BdIOThread *iot[NTHREADS];
    Writer writers[NTHREADS * PER_THREAD + PER_THREAD];
    Spawn spawn[NTHREADS + 1];
    int nwriters = G_N_ELEMENTS(writers);
    Shared sh = { 0 };
    BdNode *node;
    size_t slice;
    int drains = 0;
    int fd;

    g_assert_no_error(err);
    path = g_build_filename(dir, "img", NULL);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, SIZE), ==, 0);
    close(fd);

    node = open_node(path, extra, &err);
    g_assert_no_error(err);
    sh.blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                        BD_PERM_ALL);
    g_assert_true(bd_blk_insert(sh.blk, node, &err));
    g_assert_no_error(err);
    /* slices smaller than a block need read-modify-write when direct */
    sh.align = MAX(node->bl.request_alignment, 512);
    slice = sh.align / NSLICES;
    g_assert_cmpint(nwriters, <=, NSLICES);

    for (int i = 0; i < nwriters; i++) {
        writers[i] = (Writer) { .sh = &sh, .id = i };
    }
    for (int t = 0; t <= NTHREADS; t++) {
        spawn[t] = (Spawn) { &writers[t * PER_THREAD], PER_THREAD };
    }
    for (int t = 0; t < NTHREADS; t++) {
        g_autofree char *id = g_strdup_printf("mq%d", t);

        iot[t] = bd_iothread_new(id, 0, 0, 0, &err);
        g_assert_no_error(err);
        bd_aio_bh_schedule_oneshot(bd_iothread_get_aio_context(iot[t]),
                                   spawn_bh, &spawn[t]);
    }
    /* the last writers run in the node's own (main) context */
    spawn_bh(&spawn[NTHREADS]);

    /* drained sections from the main loop while the others write */
    while (__atomic_load_n(&sh.finished, __ATOMIC_SEQ_CST) < nwriters) {
        if (drains < 20) {
            bd_node_drained_begin(node);
            g_assert_cmpuint(__atomic_load_n(&node->in_flight,
                                             __ATOMIC_SEQ_CST), ==, 0);
            g_assert_null(node->tracked);
            bd_node_drained_end(node);
            drains++;
        }
        bd_aio_poll(main_ctx, true);
    }
    for (int t = 0; t < NTHREADS; t++) {
        bd_iothread_destroy(iot[t]);
    }

    g_assert_cmpint(sh.failures, ==, 0);
    g_assert_cmpint(sh.bad_reads, ==, 0);
    g_assert_null(node->tracked);
    g_assert_cmpuint(node->in_flight, ==, 0);
    g_assert_cmpuint(node->serialising_in_flight, ==, 0);
    /* every request was counted once, none lost to a race */
    g_assert_cmpuint(node->stats.wr_ops, ==,
                     (uint64_t)nwriters * ROUNDS * NBLOCKS);
    g_assert_cmpuint(node->stats.wr_bytes, ==,
                     (uint64_t)nwriters * ROUNDS * NBLOCKS * slice);
    g_assert_cmpuint(node->stats.rd_ops, ==,
                     (uint64_t)nwriters * ROUNDS * NBLOCKS);

    bd_blk_remove(sh.blk);
    bd_blk_unref(sh.blk);
    g_assert_true(bd_node_delete_by_monitor("mq", &err));
    g_assert_no_error(err);

    /* the file holds every writer's last round in its slice */
    {
        gsize len;

        g_assert_true(g_file_get_contents(path, (char **)&image, &len,
                                          NULL));
        g_assert_cmpuint(len, ==, SIZE);
    }
    for (int b = 0; b < NBLOCKS; b++) {
        for (int s = 0; s < NSLICES; s++) {
            const uint8_t *p = image + (size_t)b * sh.align + s * slice;
            uint8_t want = s < nwriters ? pattern(s, b, ROUNDS - 1) : 0;

            for (size_t i = 0; i < slice; i++) {
                if (p[i] != want) {
                    g_error("block %d slice %d byte %zu: %u, expected %u",
                            b, s, i, p[i], want);
                }
            }
        }
    }
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    char **dirs;

    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);

    g_test_add_data_func("/block/multiqueue/threads", NULL,
                         test_concurrent);
    g_test_add_data_func("/block/multiqueue/threads-direct",
                         "\"cache\": {\"direct\": true}", test_concurrent);
    g_test_add_data_func("/block/multiqueue/native",
                         "\"aio\": \"native\", \"cache\": {\"direct\": true}",
                         test_concurrent);
    g_test_add_data_func("/block/multiqueue/io_uring-direct",
                         "\"aio\": \"io_uring\", "
                         "\"cache\": {\"direct\": true}", test_concurrent);
    return g_test_run();
}
