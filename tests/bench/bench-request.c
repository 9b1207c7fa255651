/*
 * The cost of the request layer: 4 KiB reads and writes through a
 * BlockBackend, from one coroutine per request in flight, in the main
 * thread, onto
 *  - null-co and null-aio nodes (queue depths 1, 32, 128): the layer's own
 *    cost per request;
 *  - file nodes (the real block-file plugin) on tmpfs and on the disk, in
 *    each aio mode (threads, native with cache.direct, io_uring with and
 *    without cache.direct), 4 KiB random reads at queue depths 1 and 32.
 * Prints requests per second of CPU time (one core), nanoseconds of CPU
 * per request, and requests per second of wall time.
 *
 * Usage: bench-request [seconds-per-case [disk-dir]]
 * (BLOCKD_PLUGIN_DIR as usual; disk-dir defaults to the current directory;
 * each image lives in a private directory made and removed here.)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <glib.h>

#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define FILE_IMAGE_SIZE (256 << 20)

typedef struct Bench {
    BdBlockBackend *blk;
    bool write;
    bool random;            /* random 4 KiB offsets, else sequential */
    int64_t size;           /* offsets stay below */
    int64_t deadline;
    uint64_t done;
    int running;
} Bench;

static void worker(void *opaque)
{
    Bench *b = opaque;
    /* aligned for cache.direct */
    uint8_t *buf = aligned_alloc(4096, 4096);
    BdIOVector qiov;
    int64_t offset = 0;
    GRand *rand = g_rand_new_with_seed(GPOINTER_TO_UINT(b) ^ b->running);

    memset(buf, 0, 4096);
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
            offset = b->random
                ? (int64_t)g_rand_int_range(rand, 0, b->size / 4096) * 4096
                : (offset + 4096) % b->size;
        }
        b->done += 256;
    }
    g_rand_free(rand);
    free(buf);
    b->running--;
}

static double cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(BdBlockBackend *blk, const char *drv, bool write,
                bool random, int64_t size, int qd, double seconds)
{
    BdAioContext *ctx = bd_aio_main_context();
    Bench b = { blk, write, random, size, 0, 0, qd };
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
    printf("%-30s %-5s QD %-3d  %10.0f req/s per core  %8.1f ns/req  "
           "(%.0f req/s wall)\n", drv, write ? "write" : "read", qd,
           b.done / cpu, cpu * 1e9 / b.done, b.done / wall);
}

static BdBlockBackend *open_backend(JsonObject *opts)
{
    g_autoptr(GError) err = NULL;
    BdNode *node = bd_node_open(opts, true, &err);
    BdBlockBackend *blk;

    if (!node) {
        fprintf(stderr, "bench-request: %s\n", err->message);
        exit(1);
    }
    blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                     BD_PERM_ALL);
    if (!bd_blk_insert(blk, node, &err)) {
        fprintf(stderr, "bench-request: %s\n", err->message);
        exit(1);
    }
    return blk;
}

/* A fully written image (no holes, so reads reach the medium). */
static char *make_image(const char *parent)
{
    g_autofree char *tmpl = g_build_filename(parent, "bench-XXXXXX", NULL);
    char *dir = g_mkdtemp_full(tmpl, 0700);
    char *path;
    static char chunk[1 << 20];
    int fd;

    if (!dir) {
        fprintf(stderr, "bench-request: cannot make a directory in %s\n",
                parent);
        exit(1);
    }
    g_steal_pointer(&tmpl);
    path = g_build_filename(dir, "image.raw", NULL);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    memset(chunk, 0x5a, sizeof(chunk));
    for (int i = 0; fd >= 0 && i < FILE_IMAGE_SIZE / (int)sizeof(chunk);
         i++) {
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk)) {
            fprintf(stderr, "bench-request: writing %s failed\n", path);
            exit(1);
        }
    }
    if (fd < 0 || fsync(fd) < 0 || close(fd) < 0) {
        fprintf(stderr, "bench-request: cannot write %s\n", path);
        exit(1);
    }
    return path;
}

static void remove_image(char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);

    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
}

static void bench_file(const char *where, const char *parent, double seconds)
{
    static const struct {
        const char *aio;
        bool direct;
    } modes[] = {
        { "threads", false }, { "native", true },
        { "io_uring", false }, { "io_uring", true },
    };
    char *path = make_image(parent);

    for (unsigned m = 0; m < G_N_ELEMENTS(modes); m++) {
        g_autoptr(JsonObject) opts = json_object_new();
        g_autoptr(JsonObject) cache = json_object_new();
        g_autofree char *label = g_strdup_printf(
            "file %s aio=%s%s", where, modes[m].aio,
            modes[m].direct ? ",direct" : "");

        json_object_set_string_member(opts, "driver", "file");
        json_object_set_string_member(opts, "node-name", "bench");
        json_object_set_string_member(opts, "filename", path);
        json_object_set_string_member(opts, "aio", modes[m].aio);
        json_object_set_boolean_member(cache, "direct", modes[m].direct);
        json_object_set_object_member(opts, "cache", g_steal_pointer(&cache));
        BdBlockBackend *blk = open_backend(opts);
        for (int qd = 1; qd <= 32; qd *= 32) {
            run(blk, label, false, true, FILE_IMAGE_SIZE, qd, seconds);
        }
        bd_blk_unref(blk);
        bd_node_delete_by_monitor("bench", NULL);
    }
    remove_image(path);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    const char *disk = argc > 2 ? argv[2] : ".";
    g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
    static const char *const drivers[] = { "null-co", "null-aio" };

    bd_aio_main_context();
    bd_plugins_discover(dirs);
    for (unsigned d = 0; d < G_N_ELEMENTS(drivers); d++) {
        g_autoptr(JsonObject) opts = json_object_new();

        json_object_set_string_member(opts, "driver", drivers[d]);
        json_object_set_string_member(opts, "node-name", "bench");
        BdBlockBackend *blk = open_backend(opts);
        for (int w = 0; w < 2; w++) {
            for (int qd = 1; qd <= 128; qd = qd == 1 ? 32 : qd * 4) {
                run(blk, drivers[d], w, false, INT64_C(1) << 30, qd,
                    seconds);
            }
        }
        bd_blk_unref(blk);
        bd_node_delete_by_monitor("bench", NULL);
    }
    /* tmpfs: a private directory in /dev/shm, the machine's tmpfs */
    bench_file("tmpfs", "/dev/shm", seconds);
    bench_file("disk", disk, seconds);
    return 0;
}
