/*
 * --daemonize, as qemu-storage-daemon does it: the process forks early;
 * the parent waits on a pipe for one status byte from the daemon and exits
 * 0 only when set-up completed, 1 otherwise (including when the daemon
 * dies without a word).  Until set-up completes the daemon keeps the
 * caller's working directory and standard streams, so relative paths on
 * the command line work and errors reach the caller's stderr.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_DAEMONIZE_H
#define BLOCKD_CORE_DAEMONIZE_H

#include <stdbool.h>

#include <glib.h>

/*
 * Fork: in the caller's process this never returns (it waits for the
 * status byte and exits with the matching status).  The daemon that
 * returns has started a new session (a second fork, so that it can never
 * get a controlling terminal), has umask 027 and ignores SIGTSTP, SIGTTIN
 * and SIGTTOU.  Call before anything starts a thread.  Fails (in the
 * caller's process, nothing forked) only when the pipe or the first fork
 * cannot be made.
 */
bool bd_daemonize_start(GError **errp);

/* Whether bd_daemonize_start() made this process a daemon. */
bool bd_daemonize_active(void);

/*
 * Set-up is complete: change to "/", point stdin, stdout and stderr at
 * /dev/null and send the parent the success byte.  A no-op unless
 * daemonized; call it at most once.  On failure the caller should exit
 * with status 1 (the parent then sees EOF and exits 1 too).
 */
bool bd_daemonize_finish(GError **errp);

#endif /* BLOCKD_CORE_DAEMONIZE_H */
