/*
 * Compressed-write throughput of the qcow2 driver (BD_REQ_WRITE_COMPRESSED
 * through the real block-qcow2.so), beside `qemu-img convert -c` on the
 * same data.  Prints figures; never fails on a speed.
 *
 *   BLOCKD_PLUGIN_DIR=build/plugins build/tests/bench/bench-qcow2-compress \
 *       [SIZE_MIB [zlib|zstd]]
 *
 * The data is text-like (compresses about 3:1), SIZE_MIB (default 256)
 * in 64 KiB clusters, written from 1, 2, 4 and 8 coroutines at once (each
 * cluster compressed in the thread pool, so several at once use several
 * cores).  The images live in a private directory under /dev/shm that is
 * removed at the end.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "aio/aio-context.h"
#include "aio/coroutine.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define CLUSTER 65536

typedef struct Bench {
    BdNode *node;
    uint8_t *data;
    int64_t size;
    int64_t next;           /* the next cluster to write */
    int running;
    int ret;
} Bench;

static void writer_co(void *opaque)
{
    Bench *b = opaque;

    while (b->next < b->size && b->ret == 0) {
        int64_t off = b->next;
        BdIOVector qiov;
        int ret;

        b->next += CLUSTER;
        bd_iovec_init_buf(&qiov, b->data + off, CLUSTER);
        ret = bd_node_co_pwritev(b->node, off, CLUSTER, &qiov,
                                 BD_REQ_WRITE_COMPRESSED);
        if (ret < 0) {
            b->ret = ret;
        }
    }
    b->running--;
}

static void fill(uint8_t *buf, int64_t len)
{
    static const char *words[] = { "qcow2 ", "cluster ", "compressed ",
                                   "bitmap ", "zstd ", "deflate ", "nbd ",
                                   "export ", "refcount " };
    uint64_t k = 1;

    for (int64_t i = 0; i < len;) {
        const char *w = words[k % G_N_ELEMENTS(words)];
        int64_t n = MIN((int64_t)strlen(w), len - i);

        memcpy(buf + i, w, n);
        i += n;
        k = k * 6364136223846793005ull + 1442695040888963407ull;
        k ^= k >> 29;
    }
}

static void run(const char *const *argv)
{
    int status;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH |
                      G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                      &status, NULL) ||
        !g_spawn_check_wait_status(status, NULL)) {
        fprintf(stderr, "%s failed\n", argv[0]);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int64_t mib = argc > 1 ? atoll(argv[1]) : 256;
    const char *type = argc > 2 ? argv[2] : "zstd";
    g_autofree char *shm = g_strdup("/dev/shm/blockd-bench-XXXXXX");
    g_autofree char *raw = NULL, *img = NULL, *conv = NULL, *opts = NULL;
    g_autofree char *size = NULL;
    Bench b = { 0 };
    char **dirs;

    if (!g_mkdtemp(shm)) {
        perror("mkdtemp");
        return 1;
    }
    raw = g_build_filename(shm, "data.raw", NULL);
    img = g_build_filename(shm, "blockd.qcow2", NULL);
    conv = g_build_filename(shm, "convert.qcow2", NULL);
    opts = g_strdup_printf("cluster_size=%d,compression_type=%s", CLUSTER,
                           type);
    size = g_strdup_printf("%" G_GINT64_FORMAT "M", mib);
    b.size = mib << 20;
    b.data = g_malloc(b.size);
    fill(b.data, b.size);
    g_file_set_contents(raw, (const char *)b.data, b.size, NULL);

    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);

    printf("compressed writes, %" G_GINT64_FORMAT " MiB of text-like data, "
           "64 KiB clusters, %s, %u CPUs\n", mib, type,
           g_get_num_processors());
    for (int par = 1; par <= 8; par *= 2) {
        const char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                 "-o", opts, img, size, NULL };
        g_autofree char *json = NULL;
        g_autoptr(JsonParser) p = json_parser_new();
        GError *err = NULL;
        int64_t t0, t1;

        g_unlink(img);
        run(create);
        json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": "
                               "\"c\", \"file\": {\"driver\": \"file\", "
                               "\"filename\": \"%s\"}}", img);
        json_parser_load_from_data(p, json, -1, NULL);
        b.node = bd_node_open(json_node_get_object(json_parser_get_root(p)),
                              true, &err);
        if (!b.node) {
            fprintf(stderr, "open: %s\n", err->message);
            return 1;
        }
        b.next = 0;
        b.ret = 0;
        b.running = par;
        t0 = g_get_monotonic_time();
        for (int i = 0; i < par; i++) {
            bd_aio_coroutine_enter(bd_aio_main_context(),
                                   bd_coroutine_create(writer_co, &b));
        }
        while (b.running) {
            bd_aio_poll(bd_aio_main_context(), true);
        }
        bd_node_delete_by_monitor("c", NULL);
        t1 = g_get_monotonic_time();
        if (b.ret < 0) {
            fprintf(stderr, "write: %s\n", g_strerror(-b.ret));
            return 1;
        }
        printf("blockd, %d writer%s: %8.1f MiB/s\n", par, par > 1 ? "s" : " ",
               (double)mib * 1e6 / (double)(t1 - t0));
    }
    {
        g_autofree char *o = g_strdup_printf("compression_type=%s,"
                                             "cluster_size=%d", type,
                                             CLUSTER);
        const char *cv[] = { "qemu-img", "convert", "-c", "-f", "raw", "-O",
                             "qcow2", "-o", o, raw, conv, NULL };
        int64_t t0 = g_get_monotonic_time(), t1;

        run(cv);
        t1 = g_get_monotonic_time();
        printf("qemu-img convert -c:  %8.1f MiB/s\n",
               (double)mib * 1e6 / (double)(t1 - t0));
    }
    g_unlink(raw);
    g_unlink(img);
    g_unlink(conv);
    g_rmdir(shm);
    g_free(b.data);
    return 0;
}
