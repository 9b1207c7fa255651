/*
 * block-file: QEMU-compatible image locking; see file-lock.h.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <blockd/error.h>

#include "file-lock.h"

static const char *const perm_names[FILE_LOCK_NPERMS] = {
    "consistent read", "write", "write unchanged", "resize",
};

const char *file_lock_perm_name(uint64_t bit)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        if (bit == (1ull << i)) {
            return perm_names[i];
        }
    }
    return "unknown";
}

/* Take (F_RDLCK) or release (F_UNLCK) byte @off; 0 or -errno. */
static int lock_byte(int fd, int off, short type)
{
    struct flock fl = {
        .l_whence = SEEK_SET, .l_start = off, .l_len = 1, .l_type = type,
    };

    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/*
 * Is byte @off held by another open file description in a way that
 * conflicts with taking it exclusively?  0: free, -EAGAIN: held, other
 * -errno: the test failed.
 */
static int test_byte(int fd, int off)
{
    struct flock fl = {
        .l_whence = SEEK_SET, .l_start = off, .l_len = 1, .l_type = F_WRLCK,
    };

    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        return -errno;
    }
    return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
}

static bool apply_set(int fd, int base, uint64_t *held, uint64_t want,
                      bool unlock, GError **errp)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        uint64_t bit = 1ull << i;
        int off = base + i;
        int ret;

        if ((want & bit) && !(*held & bit)) {
            ret = lock_byte(fd, off, F_RDLCK);
            if (ret < 0) {
                bd_error_setg(errp, "Failed to lock byte %d: %s", off,
                              g_strerror(-ret));
                return false;
            }
            *held |= bit;
        } else if (unlock && !(want & bit) && (*held & bit)) {
            ret = lock_byte(fd, off, F_UNLCK);
            if (ret < 0) {
                bd_error_setg(errp, "Failed to unlock byte %d: %s", off,
                              g_strerror(-ret));
                return false;
            }
            *held &= ~bit;
        }
    }
    return true;
}

bool file_lock_apply(int fd, FileLockState *held, uint64_t perm,
                     uint64_t unshared, bool unlock, GError **errp)
{
    return apply_set(fd, FILE_LOCK_PERM_BASE, &held->perm, perm, unlock,
                     errp) &&
           apply_set(fd, FILE_LOCK_SHARED_BASE, &held->unshared, unshared,
                     unlock, errp);
}

bool file_lock_check(int fd, uint64_t perm, uint64_t shared, GError **errp)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        uint64_t bit = 1ull << i;
        int ret;

        if (!(perm & bit)) {
            continue;
        }
        ret = test_byte(fd, FILE_LOCK_SHARED_BASE + i);
        if (ret == -EAGAIN) {
            bd_error_setg(errp, "Failed to get \"%s\" lock", perm_names[i]);
            return false;
        } else if (ret < 0) {
            bd_error_setg(errp, "Failed to get \"%s\" lock: %s", perm_names[i],
                          g_strerror(-ret));
            return false;
        }
    }
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        uint64_t bit = 1ull << i;
        int ret;

        if (shared & bit) {
            continue;
        }
        ret = test_byte(fd, FILE_LOCK_PERM_BASE + i);
        if (ret == -EAGAIN) {
            bd_error_setg(errp,
                          "Failed to get shared \"%s\" lock", perm_names[i]);
            return false;
        } else if (ret < 0) {
            bd_error_setg(errp, "Failed to get shared \"%s\" lock: %s",
                          perm_names[i], g_strerror(-ret));
            return false;
        }
    }
    return true;
}
