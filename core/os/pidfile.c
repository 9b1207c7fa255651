/*
 * The pid file (see pidfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blockd/error.h>

#include "os/pidfile.h"
#include "util/trace-points.h"

static int pid_fd = -1;
static char *pid_path;          /* absolute */

static bool write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Create, lock and check @path; returns the fd or -1. */
static int open_locked(const char *path, GError **errp)
{
    for (;;) {
        struct flock lock = {
            .l_type = F_WRLCK,
            .l_whence = SEEK_SET,
            .l_len = 0,
        };
        struct stat locked, now;
        /*
         * Never through a symlink: whoever can place one at the path
         * would have us write our pid into its target and delete the
         * target at exit.  O_NONBLOCK keeps a FIFO there from blocking
         * the open; it is refused below like anything not a regular file.
         */
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                      O_NONBLOCK, 0600);

        if (fd < 0) {
            int err = errno;

            if (err == ELOOP || err == ENXIO) {
                /* what O_NOFOLLOW / O_NONBLOCK turned away */
                bd_error_setg(errp,
                              "Cannot use '%s' as pid file: not a regular "
                              "file", path);
            } else {
                bd_error_setg(errp, "Could not create '%s': %s", path,
                              g_strerror(err));
            }
            return -1;
        }
        if (fstat(fd, &locked) < 0) {
            bd_error_setg(errp, "Cannot stat file: %s", g_strerror(errno));
            close(fd);
            return -1;
        }
        if (!S_ISREG(locked.st_mode)) {
            bd_error_setg(errp,
                          "Cannot use '%s' as pid file: not a regular file",
                          path);
            close(fd);
            return -1;
        }
        if (fcntl(fd, F_SETLK, &lock) < 0) {
            bd_error_setg(errp, "Cannot lock pid file: %s", g_strerror(errno));
            close(fd);
            return -1;
        }
        /* the holder before us may have removed or replaced it */
        if (lstat(path, &now) == 0 && now.st_dev == locked.st_dev &&
            now.st_ino == locked.st_ino) {
            return fd;
        }
        close(fd);
    }
}

bool bd_pidfile_write(const char *path, GError **errp)
{
    char abs[PATH_MAX];
    g_autofree char *text = NULL;
    int fd;

    g_return_val_if_fail(pid_fd < 0, false);
    fd = open_locked(path, errp);
    if (fd < 0) {
        return false;
    }
    if (ftruncate(fd, 0) < 0) {
        bd_error_setg(errp,
                      "Failed to truncate pid file: %s", g_strerror(errno));
        goto fail;
    }
    text = g_strdup_printf("%d\n", (int)getpid());
    if (!write_all(fd, text, strlen(text))) {
        bd_error_setg(errp, "Failed to write pid file");
        goto fail;
    }
    if (!realpath(path, abs)) {
        bd_error_setg(errp, "cannot resolve PID file path: %s: %s", path,
                      g_strerror(errno));
        goto fail;
    }
    pid_fd = fd;
    pid_path = g_strdup(abs);
    BD_TRACE(&bd_tp_pidfile_written, "pid %d path %s", (int)getpid(),
             pid_path);
    return true;

fail:
    unlink(path);
    close(fd);
    return false;
}

void bd_pidfile_remove(void)
{
    struct stat locked, now;

    if (pid_fd < 0) {
        return;
    }
    /* lstat: a symlink put there since is not ours to follow */
    if (fstat(pid_fd, &locked) == 0 && lstat(pid_path, &now) == 0 &&
        now.st_dev == locked.st_dev && now.st_ino == locked.st_ino) {
        unlink(pid_path);
    }
    close(pid_fd);
    pid_fd = -1;
    g_clear_pointer(&pid_path, g_free);
}
