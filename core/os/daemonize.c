/*
 * --daemonize (see daemonize.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include <blockd/error.h>

#include "os/daemonize.h"

static bool daemonized;
static int status_fd = -1;      /* write end of the pipe to the parent */

bool bd_daemonize_active(void)
{
    return daemonized;
}

/* The first process: exit with what the daemon reports. */
static G_NORETURN void wait_for_status(int fd)
{
    unsigned char status;
    ssize_t len;

    do {
        len = read(fd, &status, 1);
    } while (len < 0 && errno == EINTR);
    /* success only on an explicit zero byte; EOF means the daemon died */
    _exit(len == 1 && status == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

bool bd_daemonize_start(GError **errp)
{
    int fds[2];
    pid_t pid;

    if (!g_unix_open_pipe(fds, FD_CLOEXEC, errp)) {
        return false;
    }
    /* what is buffered must be written once, not once per process */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        bd_error_setg(errp, "cannot fork: %s",
                      g_strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid > 0) {
        close(fds[1]);
        wait_for_status(fds[0]);
    }

    close(fds[0]);
    setsid();
    pid = fork();
    if (pid < 0) {
        /* the parent sees EOF and fails */
        _exit(EXIT_FAILURE);
    }
    if (pid > 0) {
        _exit(EXIT_SUCCESS);
    }
    umask(027);
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    status_fd = fds[1];
    daemonized = true;
    return true;
}

bool bd_daemonize_finish(GError **errp)
{
    unsigned char ok = 0;
    ssize_t len;
    int fd;

    if (!daemonized || status_fd < 0) {
        return true;
    }
    if (chdir("/") < 0) {
        bd_error_setg(errp, "not able to chdir to /: %s", g_strerror(errno));
        return false;
    }
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        bd_error_setg(errp, "cannot open /dev/null: %s", g_strerror(errno));
        return false;
    }
    fflush(NULL);
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    do {
        len = write(status_fd, &ok, 1);
    } while (len < 0 && errno == EINTR);
    close(status_fd);
    status_fd = -1;
    /* stderr is gone: nothing more can be said, only the exit status */
    return len == 1;
}
