/*
 * block-file: the per-node state of the file and host_device drivers,
 * shared by the driver's open/permission glue (block-file.c), its I/O
 * callbacks (file-io.c) and alignment probing (file-probe.c).
 */
#ifndef BLOCK_FILE_STATE_H
#define BLOCK_FILE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <blockd/blockd.h>

#include "file-aio.h"
#include "file-lock.h"

typedef struct FileState {
    int fd;
    char *filename;
    JsonObject *options;        /* the BlockdevOptions fd was opened with */
    bool is_device;             /* host_device: a block or char device */
    bool is_blk;                /* S_ISBLK */
    int open_flags;             /* the open(2) flags of fd */

    const FileAioEngine *engine;
    FileAio *aio;               /* the engine in the node's context */
    unsigned max_batch;

    bool use_lock;
    FileLockState locks;        /* the bytes fd holds */
    uint64_t perm, shared;      /* committed permissions */

    uint32_t request_alignment; /* from probing with O_DIRECT, else 1 */
    uint32_t buf_align;

    bool drop_cache;
    bool check_cache_dropped;

    /* What the file system turned out not to support (QEMU's has_*). */
    bool has_write_zeroes;
    bool has_discard;
    bool has_fallocate;
    /*
     * The file lives in memory (tmpfs, ramfs): reading it never waits for
     * a disk, so zero-copy reads need no page-cache probe.
     */
    bool in_memory;
    /* A failed fdatasync leaves the page cache unknown: fail flushes. */
    bool page_cache_inconsistent;

    /*
     * While a blockdev-reopen is prepared: the descriptor opened with the
     * new flags (else -1) and the lock bytes it holds.  Permission
     * changes in between lock bytes on both descriptors.
     */
    int reopen_fd;
    FileLockState reopen_locks;
    /*
     * auto-read-only=on without read-only=on: fd is read-write only while
     * some user writes or resizes (QEMU's dynamic auto-read-only).
     * @perm_fd_pending: reopen_fd was opened by check_perm for that (not
     * by a blockdev-reopen), set_perm swaps it in and abort_perm drops it.
     */
    bool dynamic_ro;
    bool perm_fd_pending;
    int perm_fd_flags;
} FileState;

/*
 * Find the request and buffer alignments O_DIRECT needs on @s->fd (QEMU's
 * way: the device's logical block size, else reads of 512..4096 bytes
 * until one is accepted).  Fails with "Could not find working O_DIRECT
 * alignment".  Main loop.
 */
bool file_probe_alignment(FileState *s, GError **errp);

/* The I/O callbacks (file-io.c); contracts in <blockd/block-driver.h>. */
int64_t file_co_getlength(BdNode *node);
int file_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                   BdIOVector *qiov, BdRequestFlags flags);
int file_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                    BdIOVector *qiov, BdRequestFlags flags);
int file_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                          BdRequestFlags flags);
int file_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes);
int64_t file_co_pread_to_fd(BdNode *node, int64_t offset, int64_t bytes,
                            int out_fd, BdRequestFlags flags);
int file_co_flush(BdNode *node);
int file_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                         int64_t bytes, int64_t *pnum, int64_t *map,
                         BdNode **file);
/* coroutine_fn, main loop: blockdev-create for the file driver. */
int file_co_create(JsonObject *opts, GError **errp);
/*
 * coroutine_fn: resize the regular file @fd to @offset as QEMU does (with
 * its messages), in the thread pool; for resizing a node and for creating
 * an image.
 */
int file_co_truncate_fd(int fd, int64_t offset, BdPreallocMode prealloc,
                        GError **errp);
int file_co_truncate(BdNode *node, int64_t offset, bool exact,
                     BdPreallocMode prealloc, BdRequestFlags flags,
                     GError **errp);

#endif /* BLOCK_FILE_STATE_H */
