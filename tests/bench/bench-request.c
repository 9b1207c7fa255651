/*
 * The cost of the request layer: 4 KiB reads and writes through a
 * BlockBackend onto a null-co node (the real block-null plugin), from one
 * coroutine per request in flight, at queue depths 1, 32 and 128, in the
 * main thread.  Prints requests per second of CPU time (one core) and
 * nanoseconds per request.
 *
 * Usage: bench-request [seconds-per-case]   (BLOCKD_PLUGIN_DIR as usual)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib.h>

#include "block-int.h"
#include "plugin-loader.h"

typedef struct Bench {
    BdBlockBackend *blk;
    bool write;
    int64_t deadline;
    uint64_t done;
    int running;
} Bench;

static void worker(void *opaque)
{
    Bench *b = opaque;
    uint8_t *buf = g_malloc0(4096);
    BdIOVector qiov;
    int64_t offset = 0;

    bd_iovec_init_buf(&qiov, buf, 4096);
    while (bd_clock_ns() < b->deadline) {
        /* check the clock once per 256 requests of this coroutine */
        for (int i = 0; i < 256; i++) {
            int ret = b->write
                ? bd_blk_co_pwritev(b->blk, offset, 4096, &qiov, 0)
                : bd_blk_co_preadv(b->blk, offset, 4096, &qiov, 0);
            if (ret < 0) {
                fprintf(stderr, "request failed: %s\n", g_strerror(-ret));
                exit(1);
            }
            offset = (offset + 4096) & ((1 << 30) - 1);
        }
        b->done += 256;
    }
    g_free(buf);
    b->running--;
}

static double cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(BdBlockBackend *blk, const char *drv, bool write, int qd,
                double seconds)
{
    BdAioContext *ctx = bd_aio_main_context();
    Bench b = { blk, write, 0, 0, qd };
    double cpu0 = cpu_seconds();
    int64_t t0 = bd_clock_ns();

    b.deadline = t0 + (int64_t)(seconds * 1e9);
    for (int i = 0; i < qd; i++) {
        bd_aio_coroutine_enter(ctx, bd_coroutine_create(worker, &b));
    }
    while (b.running) {
        bd_aio_poll(ctx, true);
    }
    double cpu = cpu_seconds() - cpu0;
    double wall = (bd_clock_ns() - t0) / 1e9;
    printf("%-8s %-5s QD %-3d  %10.0f req/s per core  %7.1f ns/req  "
           "(%.0f req/s wall)\n", drv, write ? "write" : "read", qd,
           b.done / cpu, cpu * 1e9 / b.done, b.done / wall);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
    static const char *const drivers[] = { "null-co", "null-aio" };

    bd_aio_main_context();
    bd_plugins_discover(dirs);
    for (unsigned d = 0; d < G_N_ELEMENTS(drivers); d++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) opts = json_object_new();
        BdNode *node;
        BdBlockBackend *blk;

        json_object_set_string_member(opts, "driver", drivers[d]);
        json_object_set_string_member(opts, "node-name", "bench");
        node = bd_node_open(opts, true, &err);
        if (!node) {
            fprintf(stderr, "bench-request: %s\n", err->message);
            return 1;
        }
        blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                         BD_PERM_ALL);
        if (!bd_blk_insert(blk, node, &err)) {
            fprintf(stderr, "bench-request: %s\n", err->message);
            return 1;
        }
        for (int w = 0; w < 2; w++) {
            for (int qd = 1; qd <= 128; qd = qd == 1 ? 32 : qd * 4) {
                run(blk, drivers[d], w, qd, seconds);
            }
        }
        bd_blk_unref(blk);
        bd_node_delete_by_monitor("bench", NULL);
    }
    return 0;
}
