/*
 * systemd integration, which qemu-storage-daemon lacks, done with the
 * documented environment protocols (no libsystemd):
 *
 * - readiness: when NOTIFY_SOCKET is set, state strings ("READY=1",
 *   "STOPPING=1") are sent as datagrams to that UNIX socket (a path, or
 *   an abstract name written with a leading '@');
 * - socket activation: the listening sockets systemd passes as fds 3...
 *   (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) can be named wherever an fd
 *   address is accepted (--chardev socket,fd=NAME; later
 *   --nbd-server addr.type=fd,addr.str=NAME).
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_SYSTEMD_H
#define BLOCKD_CORE_SYSTEMD_H

#include <stdbool.h>

#include <blockd/socket-activation.h>

/*
 * Take the sockets passed by socket activation: when LISTEN_PID is this
 * process and LISTEN_FDS is N > 0, fds 3 .. 3+N-1 are recorded under the
 * names of LISTEN_FDNAMES (colon-separated; "unknown" when missing, as
 * systemd says) and made close-on-exec.  The three variables are removed
 * from the environment in every case, so nothing started later mistakes
 * them for its own.  Call once, first thing in main (before --daemonize
 * forks: LISTEN_PID names the process systemd started).
 */
void bd_socket_activation_init(void);

/* bd_socket_activation_fd() is in <blockd/socket-activation.h>. */

/*
 * Whether socket activation passed this process any fds (handed out or
 * not): fd names are then expected where an fd address is accepted.
 */
bool bd_socket_activation_passed(void);

/* How many passed fds have not been handed out yet. */
unsigned bd_socket_activation_unused(void);

/*
 * Tell the service manager @state ("READY=1", "STOPPING=1", ...) when
 * NOTIFY_SOCKET is set; a no-op otherwise.  Returns false (and leaves
 * errno) if the message could not be sent; the daemon carries on either
 * way.
 */
bool bd_systemd_notify(const char *state);

#endif /* BLOCKD_CORE_SYSTEMD_H */
