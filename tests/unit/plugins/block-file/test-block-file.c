/*
 * block-file's I/O engines, run in-process on a private temporary file:
 * data goes to the file and comes back, short reads at end of file read as
 * zeroes, errors come back as -errno, and the batching engines submit the
 * requests of one loop iteration together.  Lock bytes conflict between
 * open file descriptions as QEMU's do, and with qemu-io/qemu-img for real.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "aio/aio-context.h"
#include <blockd/iothread.h>

#include "aio-test-util.h"
#include "file-aio.h"
#include "file-lock.h"


typedef struct Fixture {
    char *dir;
    char *path;
    int fd;
    FileAio *aio;
    const FileAioEngine *engine;
} Fixture;

typedef struct EngineCase {
    FileAioMode mode;
    bool direct;
    unsigned max_batch;
    bool tmpfs;     /* the image in a private directory on /dev/shm */
} EngineCase;

#define BLOCK 4096
#define FILE_SIZE (1024 * 1024)

static void fixture_setup(Fixture *f, gconstpointer data)
{
    const EngineCase *ec = data;
    GError *err = NULL;

    if (ec->tmpfs) {
        f->dir = g_mkdtemp_full(g_strdup("/dev/shm/blockd-test-file-XXXXXX"),
                                0700);
        g_assert_nonnull(f->dir);
    } else {
        f->dir = g_dir_make_tmp("blockd-test-file-XXXXXX", &err);
        g_assert_no_error(err);
    }
    f->path = g_build_filename(f->dir, "img", NULL);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC |
                 (ec->direct ? O_DIRECT : 0), 0600);
    g_assert_cmpint(f->fd, >=, 0);
    g_assert_cmpint(ftruncate(f->fd, FILE_SIZE), ==, 0);
    f->engine = file_aio_engine(ec->mode);
    g_assert_nonnull(f->engine);
    f->aio = file_aio_open(f->engine, main_ctx, ec->max_batch, &err);
    g_assert_no_error(err);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    file_aio_close(f->aio);
    close(f->fd);
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void *aligned_buf(size_t size)
{
    void *p = NULL;

    g_assert_cmpint(posix_memalign(&p, BLOCK, size), ==, 0);
    return p;
}

/* One request, run in its own coroutine. */
typedef struct Op {
    Fixture *f;
    int fd;
    uint64_t offset;
    struct iovec iov[3];
    int niov;
    enum { OP_READ, OP_WRITE, OP_FLUSH } kind;
    int ret;
    bool done;
    int *done_count;
} Op;

static void op_entry(void *opaque)
{
    Op *op = opaque;

    switch (op->kind) {
    case OP_READ:
        op->ret = file_aio_co_preadv(op->f->aio, op->fd, op->offset,
                                     op->iov, op->niov);
        break;
    case OP_WRITE:
        op->ret = file_aio_co_pwritev(op->f->aio, op->fd, op->offset,
                                      op->iov, op->niov);
        break;
    case OP_FLUSH:
        op->ret = file_aio_co_flush(op->f->aio, op->fd);
        break;
    }
    op->done = true;
    if (op->done_count) {
        (*op->done_count)++;
    }
}

static int run_op(Op *op)
{
    bd_coroutine_enter(bd_coroutine_create(op_entry, op));
    WAIT_FOR(op->done);
    return op->ret;
}

/* 256 concurrent 4 KiB writes of distinct patterns, then reads of them. */
static void test_roundtrip(Fixture *f, gconstpointer data)
{
    enum { N = FILE_SIZE / BLOCK };
    Op *ops = g_new0(Op, N);
    uint8_t *buf = aligned_buf(FILE_SIZE);
    int done = 0;

    for (int i = 0; i < N; i++) {
        memset(buf + i * BLOCK, i & 0xff, BLOCK);
        ops[i] = (Op) {
            .f = f, .fd = f->fd, .offset = (uint64_t)i * BLOCK,
            .iov = { { buf + i * BLOCK, BLOCK } }, .niov = 1,
            .kind = OP_WRITE, .done_count = &done,
        };
        bd_coroutine_enter(bd_coroutine_create(op_entry, &ops[i]));
    }
    WAIT_FOR(done == N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(ops[i].ret, ==, 0);
    }

    memset(buf, 0xee, FILE_SIZE);
    done = 0;
    for (int i = 0; i < N; i++) {
        ops[i].kind = OP_READ;
        ops[i].done = false;
        bd_coroutine_enter(bd_coroutine_create(op_entry, &ops[i]));
    }
    WAIT_FOR(done == N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(ops[i].ret, ==, 0);
        for (int j = 0; j < BLOCK; j++) {
            if (buf[i * BLOCK + j] != (i & 0xff)) {
                g_error("block %d byte %d: 0x%x", i, j, buf[i * BLOCK + j]);
            }
        }
    }

    Op flush = { .f = f, .fd = f->fd, .kind = OP_FLUSH };
    g_assert_cmpint(run_op(&flush), ==, 0);
    free(buf);
    g_free(ops);
}

/* A vectored write of three pieces lands in file order. */
static void test_vectored(Fixture *f, gconstpointer data)
{
    uint8_t *a = aligned_buf(BLOCK), *b = aligned_buf(2 * BLOCK);
    uint8_t *c = aligned_buf(BLOCK), *back = aligned_buf(4 * BLOCK);
    Op op = {
        .f = f, .fd = f->fd, .offset = 8 * BLOCK, .niov = 3,
        .iov = { { a, BLOCK }, { b, 2 * BLOCK }, { c, BLOCK } },
        .kind = OP_WRITE,
    };

    memset(a, 'a', BLOCK);
    memset(b, 'b', 2 * BLOCK);
    memset(c, 'c', BLOCK);
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpint(pread(f->fd, back, 4 * BLOCK, 8 * BLOCK), ==, 4 * BLOCK);
    g_assert_cmpint(back[0], ==, 'a');
    g_assert_cmpint(back[BLOCK], ==, 'b');
    g_assert_cmpint(back[3 * BLOCK - 1], ==, 'b');
    g_assert_cmpint(back[3 * BLOCK], ==, 'c');

    /* And back through the engine, split differently. */
    memset(back, 0, 4 * BLOCK);
    op = (Op) {
        .f = f, .fd = f->fd, .offset = 8 * BLOCK, .niov = 2,
        .iov = { { back, 3 * BLOCK }, { back + 3 * BLOCK, BLOCK } },
        .kind = OP_READ,
    };
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpint(back[BLOCK - 1], ==, 'a');
    g_assert_cmpint(back[4 * BLOCK - 1], ==, 'c');
    free(a);
    free(b);
    free(c);
    free(back);
}

/* A read across end of file: data up to EOF, zeroes after it. */
static void test_read_eof(Fixture *f, gconstpointer data)
{
    uint8_t *buf = aligned_buf(4 * BLOCK);
    Op op = {
        .f = f, .fd = f->fd, .offset = FILE_SIZE - BLOCK, .niov = 1,
        .iov = { { buf, 4 * BLOCK } }, .kind = OP_READ,
    };
    uint8_t *last = aligned_buf(BLOCK);

    memset(last, 0x5a, BLOCK);
    g_assert_cmpint(pwrite(f->fd, last, BLOCK, FILE_SIZE - BLOCK), ==,
                    BLOCK);
    memset(buf, 0xff, 4 * BLOCK);
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x5a);
    g_assert_cmpint(buf[BLOCK - 1], ==, 0x5a);
    for (int i = BLOCK; i < 4 * BLOCK; i++) {
        g_assert_cmpint(buf[i], ==, 0);
    }
    free(buf);
    free(last);
}

/* Errors come back as -errno: a read of a write-only descriptor. */
static void test_error(Fixture *f, gconstpointer data)
{
    uint8_t *buf = aligned_buf(BLOCK);
    int wfd = open(f->path, O_WRONLY | O_CLOEXEC);
    Op op = {
        .f = f, .fd = wfd, .offset = 0, .niov = 1,
        .iov = { { buf, BLOCK } }, .kind = OP_READ,
    };

    g_assert_cmpint(wfd, >=, 0);
    g_assert_cmpint(run_op(&op), ==, -EBADF);
    /* The engine still works afterwards. */
    op.fd = f->fd;
    op.done = false;
    g_assert_cmpint(run_op(&op), ==, 0);
    close(wfd);
    free(buf);
}

/*
 * Requests started in one go are submitted together by the batching
 * engines: 32 reads cost one submission (threads: one each, or none when
 * the page cache answers them inline).
 */
static void test_batching(Fixture *f, gconstpointer data)
{
    const EngineCase *ec = data;
    enum { N = 32 };
    Op ops[N];
    uint8_t *buf = aligned_buf(N * BLOCK);
    int done = 0;
    uint64_t before = f->aio->submits;
    uint64_t submits;

    for (int i = 0; i < N; i++) {
        ops[i] = (Op) {
            .f = f, .fd = f->fd, .offset = (uint64_t)i * BLOCK,
            .iov = { { buf + i * BLOCK, BLOCK } }, .niov = 1,
            .kind = OP_READ, .done_count = &done,
        };
        bd_coroutine_enter(bd_coroutine_create(op_entry, &ops[i]));
    }
    WAIT_FOR(done == N);
    submits = f->aio->submits - before;
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(ops[i].ret, ==, 0);
    }
    if (ec->mode == FILE_AIO_THREADS && !ec->direct) {
        /* just written, so cached: RWF_NOWAIT reads answer inline */
        g_assert_cmpuint(submits, ==, 0);
    } else if (ec->mode == FILE_AIO_THREADS || ec->max_batch == 1) {
        g_assert_cmpuint(submits, ==, N);
    } else if (ec->max_batch) {
        g_assert_cmpuint(submits, ==, N / ec->max_batch);
    } else {
        g_assert_cmpuint(submits, ==, 1);
    }

    /* an iothread's aio-max-batch applies to nodes that set none */
    if (ec->mode != FILE_AIO_THREADS && !ec->max_batch) {
        g_assert_true(bd_aio_context_set_aio_params(main_ctx, 4, NULL));
        done = 0;
        before = f->aio->submits;
        for (int i = 0; i < N; i++) {
            bd_coroutine_enter(bd_coroutine_create(op_entry, &ops[i]));
        }
        WAIT_FOR(done == N);
        g_assert_true(bd_aio_context_set_aio_params(main_ctx, 0, NULL));
        g_assert_cmpuint(f->aio->submits - before, ==, N / 4);
    }
    free(buf);
}


/* --- lock bytes ---------------------------------------------------------- */

#define PERM_READ 0x1u
#define PERM_WRITE 0x2u
#define PERM_WRITE_UNCHANGED 0x4u
#define PERM_RESIZE 0x8u
#define PERM_ALL 0xfu

typedef struct LockFixture {
    char *dir;
    char *path;
} LockFixture;

static void lock_setup(LockFixture *f, gconstpointer data)
{
    GError *err = NULL;
    int fd;

    f->dir = g_dir_make_tmp("blockd-test-lock-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "img", NULL);
    fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, FILE_SIZE), ==, 0);
    close(fd);
}

static void lock_teardown(LockFixture *f, gconstpointer data)
{
    g_autofree char *qcow2 = g_strconcat(f->path, ".qcow2", NULL);

    g_unlink(qcow2);
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static int open_rw(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    return fd;
}

/* What QEMU's permission update does: take, check, then commit/undo. */
static bool take_perms(int fd, FileLockState *held, uint64_t perm,
                       uint64_t shared, GError **errp)
{
    FileLockState old = *held;

    if (file_lock_apply(fd, held, old.perm | perm,
                        old.unshared | (~shared & PERM_ALL), false, errp) &&
        file_lock_check(fd, perm, shared, errp)) {
        return file_lock_apply(fd, held, perm, ~shared & PERM_ALL, true,
                               errp);
    }
    file_lock_apply(fd, held, old.perm, old.unshared, true, NULL);
    return false;
}

/* Two descriptors of one process: a writer that shares nothing keeps a
 * second writer and a reader out, with QEMU's messages. */
static void test_lock_conflicts(LockFixture *f, gconstpointer data)
{
    int a = open_rw(f->path), b = open_rw(f->path);
    FileLockState ha = { 0 }, hb = { 0 };
    GError *err = NULL;

    g_assert_true(take_perms(a, &ha, PERM_READ | PERM_WRITE,
                             PERM_READ | PERM_WRITE_UNCHANGED, &err));
    g_assert_no_error(err);
    g_assert_cmphex(ha.perm, ==, PERM_READ | PERM_WRITE);
    g_assert_cmphex(ha.unshared, ==, PERM_WRITE | PERM_RESIZE);

    /* b wants to write: a does not share write. */
    g_assert_false(take_perms(b, &hb, PERM_READ | PERM_WRITE, PERM_ALL,
                              &err));
    g_assert_cmpstr(err->message, ==, "Failed to get \"write\" lock");
    g_clear_error(&err);
    g_assert_cmphex(hb.perm | hb.unshared, ==, 0);  /* undone */

    /* b only reads but does not share write: a writes. */
    g_assert_false(take_perms(b, &hb, PERM_READ,
                              PERM_ALL & ~PERM_WRITE, &err));
    g_assert_cmpstr(err->message, ==, "Failed to get shared \"write\" lock");
    g_clear_error(&err);

    /* b reads and shares everything: fine. */
    g_assert_true(take_perms(b, &hb, PERM_READ, PERM_ALL, &err));
    g_assert_no_error(err);

    /* Once a drops write and shares everything, b may write. */
    g_assert_true(take_perms(a, &ha, PERM_READ, PERM_ALL, &err));
    g_assert_no_error(err);
    g_assert_true(take_perms(b, &hb, PERM_READ | PERM_WRITE, PERM_ALL,
                             &err));
    g_assert_no_error(err);

    /* The same descriptor never conflicts with itself. */
    g_assert_true(take_perms(b, &hb, PERM_READ | PERM_WRITE | PERM_RESIZE,
                             PERM_READ, &err));
    g_assert_no_error(err);
    close(a);
    close(b);
}

/* Run @argv; returns its exit status, stderr in *@err_out. */
static int run_tool(const char *const *argv, char **err_out)
{
    g_autofree char *out = NULL;
    GError *err = NULL;
    int status = -1;

    /* stdout is kept too: it must not mix with the TAP output. */
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                      NULL, NULL, &out, err_out, &status, &err)) {
        g_error("%s: %s", argv[0], err->message);
    }
    return status;
}

static bool have_tool(const char *name)
{
    g_autofree char *path = g_find_program_in_path(name);

    /* the test command installs it: missing is a failure, not a skip */
    if (!path) {
        g_test_message("%s is not installed", name);
        g_test_fail();
    }
    return path != NULL;
}

/*
 * Our bytes as qemu-img sees them: holding write without sharing it, as a
 * blockd writer does, makes "qemu-img info" of a qcow2 image (which does
 * not share write) fail exactly as it does against QEMU.
 */
static void test_lock_qemu_img_sees_us(LockFixture *f, gconstpointer data)
{
    g_autofree char *qcow2 = g_strconcat(f->path, ".qcow2", NULL);
    const char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                             qcow2, "1M", NULL };
    const char *info[] = { "qemu-img", "info", qcow2, NULL };
    g_autofree char *expected = NULL;
    char *errout = NULL;
    FileLockState held = { 0 };
    GError *err = NULL;
    int fd;

    if (!have_tool("qemu-img")) {
        return;
    }
    g_assert_cmpint(run_tool(create, &errout), ==, 0);
    g_free(errout);
    fd = open_rw(qcow2);
    /* What an NBD export's writer takes on a file node. */
    g_assert_true(take_perms(fd, &held, PERM_READ | PERM_WRITE,
                             PERM_ALL & ~PERM_RESIZE, &err));
    g_assert_no_error(err);
    g_assert_cmpint(run_tool(info, &errout), !=, 0);
    expected = g_strdup_printf("qemu-img: Could not open '%s': Failed to "
                               "get shared \"write\" lock\nIs another "
                               "process using the image [%s]?\n",
                               qcow2, qcow2);
    g_assert_cmpstr(errout, ==, expected);
    g_free(errout);

    /* Released: qemu-img opens it again. */
    g_assert_true(file_lock_apply(fd, &held, 0, 0, true, &err));
    g_assert_cmpint(run_tool(info, &errout), ==, 0);
    g_free(errout);
    close(fd);
}

/*
 * qemu-io's bytes as we see them: while qemu-io holds a qcow2 image for
 * writing (using write and resize, sharing neither), we cannot take write
 * nor refuse to share it.
 */
static void test_lock_we_see_qemu_io(LockFixture *f, gconstpointer data)
{
    g_autofree char *qcow2 = g_strconcat(f->path, ".qcow2", NULL);
    const char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                             qcow2, "1M", NULL };
    const char *qemu_io[] = { "qemu-io", "-f", "qcow2", qcow2, NULL };
    char *errout = NULL;
    GError *err = NULL;
    GPid pid;
    int in_fd, fd;
    FileLockState held = { 0 };
    int64_t deadline;

    if (!have_tool("qemu-img") || !have_tool("qemu-io")) {
        return;
    }
    g_assert_cmpint(run_tool(create, &errout), ==, 0);
    g_free(errout);
    /* qemu-io waits for commands on stdin, holding the image. */
    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)qemu_io, NULL,
                                           G_SPAWN_SEARCH_PATH |
                                           G_SPAWN_DO_NOT_REAP_CHILD |
                                           G_SPAWN_STDOUT_TO_DEV_NULL |
                                           G_SPAWN_STDERR_TO_DEV_NULL,
                                           NULL, NULL, &pid, &in_fd, NULL,
                                           NULL, &err));
    g_assert_no_error(err);
    fd = open_rw(qcow2);
    /* Wait until qemu-io has its locks. */
    deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (file_lock_check(fd, PERM_WRITE, PERM_ALL, NULL)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10000);
    }
    g_assert_false(take_perms(fd, &held, PERM_READ | PERM_WRITE, PERM_ALL,
                              &err));
    g_assert_cmpstr(err->message, ==, "Failed to get \"write\" lock");
    g_clear_error(&err);
    g_assert_false(take_perms(fd, &held, PERM_READ,
                              PERM_ALL & ~PERM_WRITE, &err));
    g_assert_cmpstr(err->message, ==, "Failed to get shared \"write\" lock");
    g_clear_error(&err);
    g_assert_false(take_perms(fd, &held, PERM_READ | PERM_RESIZE, PERM_ALL,
                              &err));
    g_assert_cmpstr(err->message, ==, "Failed to get \"resize\" lock");
    g_clear_error(&err);
    /* Reading while sharing everything is what qemu-io allows. */
    g_assert_true(take_perms(fd, &held, PERM_READ, PERM_ALL, &err));
    g_assert_no_error(err);

    close(in_fd);       /* EOF: qemu-io quits */
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    g_spawn_close_pid(pid);
    g_assert_true(take_perms(fd, &held, PERM_READ | PERM_WRITE, PERM_READ,
                             &err));
    g_assert_no_error(err);
    close(fd);
}

/*
 * tmpfs and the threads engine: reads and small writes are done inline,
 * writes of 512 KiB and more (counted over all their buffers) in a
 * worker, so that the loop can receive the next request meanwhile.
 */
static void test_tmpfs_inline_policy(Fixture *f, gconstpointer data)
{
    enum { BIG = 512 * 1024 };
    uint8_t *buf = aligned_buf(FILE_SIZE);
    uint8_t *back = aligned_buf(FILE_SIZE);
    Op op = {
        .f = f, .fd = f->fd, .kind = OP_WRITE, .niov = 2,
        /* two halves: the size that counts is the whole request's */
        .iov = { { buf, BIG / 2 }, { buf + BIG / 2, BIG / 2 } },
    };
    uint64_t before;

    for (size_t i = 0; i < FILE_SIZE; i++) {
        buf[i] = (uint8_t)(i * 7 + i / 4096);
    }
    before = f->aio->submits;
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpuint(f->aio->submits - before, ==, 1);

    /* just below the limit: inline */
    op = (Op) {
        .f = f, .fd = f->fd, .offset = BIG, .kind = OP_WRITE, .niov = 1,
        .iov = { { buf + BIG, BIG - BLOCK } },
    };
    before = f->aio->submits;
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpuint(f->aio->submits - before, ==, 0);

    /* a read of the whole file: inline, and it sees both writes */
    memset(back, 0xee, FILE_SIZE);
    op = (Op) {
        .f = f, .fd = f->fd, .kind = OP_READ, .niov = 1,
        .iov = { { back, FILE_SIZE - BLOCK } },
    };
    before = f->aio->submits;
    g_assert_cmpint(run_op(&op), ==, 0);
    g_assert_cmpuint(f->aio->submits - before, ==, 0);
    g_assert_cmpmem(back, FILE_SIZE - BLOCK, buf, FILE_SIZE - BLOCK);
    free(back);
    free(buf);
}

static const struct {
    const char *name;
    EngineCase ec;
} cases[] = {
    { "threads", { FILE_AIO_THREADS, false, 0 } },
    { "threads-direct", { FILE_AIO_THREADS, true, 0 } },
    { "native", { FILE_AIO_NATIVE, true, 0 } },
    { "native-batch1", { FILE_AIO_NATIVE, true, 1 } },
    { "native-batch8", { FILE_AIO_NATIVE, true, 8 } },
    /* tmpfs: the threads engine does every request inline */
    { "threads-tmpfs", { FILE_AIO_THREADS, false, 0, true } },
    { "io_uring", { FILE_AIO_IO_URING, false, 0 } },
    { "io_uring-direct", { FILE_AIO_IO_URING, true, 0 } },
    { "io_uring-batch8", { FILE_AIO_IO_URING, false, 8 } },
};

static const struct {
    const char *name;
    void (*fn)(Fixture *, gconstpointer);
} tests[] = {
    { "roundtrip", test_roundtrip },
    { "vectored", test_vectored },
    { "read-eof", test_read_eof },
    { "error", test_error },
    { "batching", test_batching },
};

static const EngineCase tmpfs_case = { FILE_AIO_THREADS, false, 0, true };

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        if (!file_aio_engine(cases[c].ec.mode)) {
            continue;       /* not in this build */
        }
        for (size_t t = 0; t < G_N_ELEMENTS(tests); t++) {
            g_autofree char *path = g_strdup_printf("/block-file/aio/%s/%s",
                                                    cases[c].name,
                                                    tests[t].name);
            g_test_add(path, Fixture, &cases[c].ec, fixture_setup,
                       tests[t].fn, fixture_teardown);
        }
    }
    g_test_add("/block-file/aio/threads-tmpfs/inline-policy", Fixture,
               &tmpfs_case, fixture_setup, test_tmpfs_inline_policy,
               fixture_teardown);
    g_test_add("/block-file/lock/conflicts", LockFixture, NULL, lock_setup,
               test_lock_conflicts, lock_teardown);
    g_test_add("/block-file/lock/qemu-img-sees-us", LockFixture, NULL,
               lock_setup, test_lock_qemu_img_sees_us, lock_teardown);
    g_test_add("/block-file/lock/we-see-qemu-io", LockFixture, NULL,
               lock_setup, test_lock_we_see_qemu_io, lock_teardown);
    return g_test_run();
}
