/*
 * bench-file: the block-file I/O engines (aio=threads, native, io_uring)
 * in-process, on tmpfs and on the disk: 4 KiB random reads at queue depth
 * 1 and 32, and 1 MiB sequential reads, from coroutines in the main
 * AioContext, as the file driver issues them.
 *
 * Usage: bench-file [--seconds N] [--size MIB] [--disk-dir DIR]
 *                   [--shm-dir DIR]
 * Each location gets a private directory (mode 0700) made inside the given
 * one (default: the build tree for the disk, /dev/shm for tmpfs), removed
 * at the end.  Output: one line per case with IOPS, MiB/s and the mean
 * time per request in ns (wall time x queue depth / requests).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "blockd-config.h"
#include "aio/aio-context.h"
#include "file-aio.h"

static BdAioContext *main_ctx;

typedef struct Worker {
    struct Bench *b;
    uint8_t *buf;
    uint64_t seq_next;      /* sequential: this worker's next offset */
    GRand *rand;
} Worker;

typedef struct Bench {
    FileAio *aio;
    int fd;
    uint64_t size;
    size_t bs;
    bool sequential;
    int64_t deadline;
    uint64_t ops;
    int running;
    int errors;
} Bench;

static void worker_entry(void *opaque)
{
    Worker *w = opaque;
    Bench *b = w->b;
    uint64_t blocks = b->size / b->bs;

    while (bd_clock_ns() < b->deadline) {
        uint64_t off;
        struct iovec iov = { w->buf, b->bs };

        if (b->sequential) {
            off = w->seq_next;
            w->seq_next = (w->seq_next + b->bs) % (blocks * b->bs);
        } else {
            off = (uint64_t)g_rand_int_range(w->rand, 0, blocks) * b->bs;
        }
        if (file_aio_co_preadv(b->aio, b->fd, off, &iov, 1) < 0) {
            b->errors++;
            break;
        }
        b->ops++;
    }
    b->running--;
}

typedef struct Result {
    double iops;
    double mibs;
    double ns_per_req;
} Result;

static bool run_case(const char *path, FileAioMode mode, bool direct,
                     size_t bs, int qd, bool sequential, double seconds,
                     Result *res)
{
    const FileAioEngine *engine = file_aio_engine(mode);
    Bench b = { .bs = bs, .sequential = sequential };
    Worker *workers;
    GError *err = NULL;
    struct stat st;
    int64_t start, end;

    if (!engine) {
        return false;
    }
    b.fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (b.fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        return false;
    }
    fstat(b.fd, &st);
    b.size = st.st_size;
    b.aio = file_aio_open(engine, main_ctx, 0, &err);
    if (!b.aio) {
        fprintf(stderr, "%s: %s\n", engine->name, err->message);
        g_error_free(err);
        close(b.fd);
        return false;
    }
    workers = g_new0(Worker, qd);
    for (int i = 0; i < qd; i++) {
        workers[i].b = &b;
        if (posix_memalign((void **)&workers[i].buf, 4096, bs)) {
            abort();
        }
        workers[i].rand = g_rand_new_with_seed(i + 1);
        workers[i].seq_next = (b.size / qd / bs) * bs * i;
    }
    start = bd_clock_ns();
    b.deadline = start + (int64_t)(seconds * 1e9);
    b.running = qd;
    for (int i = 0; i < qd; i++) {
        bd_coroutine_enter(bd_coroutine_create(worker_entry, &workers[i]));
    }
    while (b.running) {
        bd_aio_poll(main_ctx, true);
    }
    end = bd_clock_ns();
    for (int i = 0; i < qd; i++) {
        free(workers[i].buf);
        g_rand_free(workers[i].rand);
    }
    g_free(workers);
    file_aio_close(b.aio);
    close(b.fd);
    if (b.errors || !b.ops) {
        fprintf(stderr, "%s: read errors\n", engine->name);
        return false;
    }
    res->iops = b.ops / ((end - start) / 1e9);
    res->mibs = res->iops * bs / (1024.0 * 1024.0);
    res->ns_per_req = (double)(end - start) * qd / b.ops;
    return true;
}

/* A file of @size bytes of non-zero data (so no read hits a hole). */
static char *make_image(const char *parent, uint64_t size, char **dir_out)
{
    g_autofree char *tmpl = g_build_filename(parent, "bench-file-XXXXXX",
                                             NULL);
    char *dir = g_mkdtemp_full(tmpl, 0700);
    char *path;
    uint8_t *buf;
    int fd;

    if (!dir) {
        fprintf(stderr, "mkdtemp in %s: %s\n", parent, strerror(errno));
        return NULL;
    }
    dir = g_strdup(dir);
    path = g_build_filename(dir, "img", NULL);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        abort();
    }
    buf = g_malloc(1024 * 1024);
    memset(buf, 0xa5, 1024 * 1024);
    for (uint64_t off = 0; off < size; off += 1024 * 1024) {
        if (pwrite(fd, buf, 1024 * 1024, off) != 1024 * 1024) {
            abort();
        }
    }
    fsync(fd);
    close(fd);
    g_free(buf);
    *dir_out = dir;
    return path;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    int size_mib = 256;
    g_autofree char *disk_parent = g_strdup(BLOCKD_BUILD_ROOT);
    g_autofree char *shm_parent = g_strdup("/dev/shm");
    static const struct {
        const char *name;
        FileAioMode mode;
        bool direct;
    } modes[] = {
        { "threads", FILE_AIO_THREADS, false },
        { "threads,direct", FILE_AIO_THREADS, true },
        { "native,direct", FILE_AIO_NATIVE, true },
        { "io_uring", FILE_AIO_IO_URING, false },
        { "io_uring,direct", FILE_AIO_IO_URING, true },
    };
    static const struct {
        const char *name;
        size_t bs;
        int qd;
        bool seq;
    } loads[] = {
        { "4k-randread-qd1", 4096, 1, false },
        { "4k-randread-qd32", 4096, 32, false },
        { "1m-seqread-qd1", 1024 * 1024, 1, true },
    };

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            size_mib = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--disk-dir") && i + 1 < argc) {
            g_free(disk_parent);
            disk_parent = g_strdup(argv[++i]);
        } else if (!strcmp(argv[i], "--shm-dir") && i + 1 < argc) {
            g_free(shm_parent);
            shm_parent = g_strdup(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--seconds N] [--size MIB] "
                    "[--disk-dir DIR] [--shm-dir DIR]\n", argv[0]);
            return 2;
        }
    }
    main_ctx = bd_aio_main_context();

    const char *places[][2] = { { "tmpfs", shm_parent },
                                { "disk", disk_parent } };
    printf("%-6s %-16s %-17s %12s %10s %12s\n", "where", "aio", "workload",
           "IOPS", "MiB/s", "ns/req");
    for (size_t p = 0; p < G_N_ELEMENTS(places); p++) {
        char *dir = NULL;
        char *path = make_image(places[p][1], (uint64_t)size_mib << 20,
                                &dir);

        if (!path) {
            continue;
        }
        for (size_t m = 0; m < G_N_ELEMENTS(modes); m++) {
            for (size_t l = 0; l < G_N_ELEMENTS(loads); l++) {
                Result r;

                if (!run_case(path, modes[m].mode, modes[m].direct,
                              loads[l].bs, loads[l].qd, loads[l].seq,
                              seconds, &r)) {
                    printf("%-6s %-16s %-17s %12s\n", places[p][0],
                           modes[m].name, loads[l].name, "n/a");
                    continue;
                }
                printf("%-6s %-16s %-17s %12.0f %10.1f %12.0f\n",
                       places[p][0], modes[m].name, loads[l].name, r.iops,
                       r.mibs, r.ns_per_req);
                fflush(stdout);
            }
        }
        g_unlink(path);
        g_rmdir(dir);
        g_free(path);
        g_free(dir);
    }
    return 0;
}
