/*
 * block-file: image locking with QEMU's byte-range scheme, so that QEMU,
 * qemu-img, qemu-storage-daemon and blockd see each other's use of an
 * image.
 *
 * For each permission bit i (QEMU's order: consistent read, write, write
 * unchanged, resize) a holder takes a shared (read) OFD lock on byte
 * 100 + i when it uses the permission and on byte 200 + i when it does
 * not share it with others.  Before taking a permission, a process checks
 * that nobody else holds its "not shared" byte; before refusing to share
 * one, it checks that nobody else holds its "used" byte.  Locks are
 * taken before the check, so two processes racing both fail rather than
 * both succeed.  OFD locks belong to the open file description: locks of
 * another descriptor (even in this process) conflict, the same
 * descriptor's never do.
 */
#ifndef BLOCK_FILE_LOCK_H
#define BLOCK_FILE_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#define FILE_LOCK_PERM_BASE 100
#define FILE_LOCK_SHARED_BASE 200
/* The permissions QEMU 7.2 locks bytes for (BD_PERM_* bits 0..3). */
#define FILE_LOCK_NPERMS 4

/*
 * The bytes one descriptor holds: bit i of @perm for byte 100 + i, bit i
 * of @unshared for byte 200 + i.
 */
typedef struct FileLockState {
    uint64_t perm;
    uint64_t unshared;
} FileLockState;

/* The name QEMU gives permission bit @bit in lock messages. */
const char *file_lock_perm_name(uint64_t bit);

/*
 * Take the bytes for @perm and @unshared on @fd that @held does not hold
 * yet; with @unlock, also release the held bytes of other permissions.
 * @held is updated to what is held afterwards, also on failure.  Fails
 * with "Failed to lock byte N: <errno text>" (or "unlock").
 */
bool file_lock_apply(int fd, FileLockState *held, uint64_t perm,
                     uint64_t unshared, bool unlock, GError **errp);

/*
 * Check that no other open file description holds a byte that conflicts
 * with using @perm and sharing only @shared: "Failed to get \"write\"
 * lock" when another holder does not share a permission in @perm,
 * "Failed to get shared \"write\" lock" when another holder uses a
 * permission outside @shared.  Permissions are checked in bit order, the
 * used ones first, as QEMU does.
 */
bool file_lock_check(int fd, uint64_t perm, uint64_t shared,
                     GError **errp);

#endif /* BLOCK_FILE_LOCK_H */
