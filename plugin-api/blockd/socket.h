/*
 * blockd plugin ABI: listening on a QAPI SocketAddress.
 *
 * One implementation of what QEMU 7.2 accepts for a listening socket,
 * with its error messages, for every user (chardevs, the NBD server...):
 *
 * - inet: host (empty: every address), port (a number or a service
 *   name), numeric (no name resolution), to (try port, port + 1, ... to
 *   until one is free), ipv4/ipv6 (which families; both unset: either,
 *   one IPv6 socket taking IPv4 too), keep-alive (SO_KEEPALIVE, which the
 *   accepted connections inherit), mptcp (Multipath TCP);
 * - unix: path (a stale socket file there is replaced; an empty path
 *   makes a new one in the temporary directory), abstract, tight;
 * - vsock: cid, port (decimal);
 * - fd: a name from systemd socket activation (see
 *   <blockd/socket-activation.h>), else, when not asked by a monitor
 *   client, a decimal fd number the daemon inherited.  A monitor client
 *   cannot pass fds to blockd (nor to qemu-storage-daemon).
 *
 * A UNIX socket file is made with mode 0660 or narrower (the umask's
 * bits are taken away too): only its owner and group may connect.
 * bd_socket_accept() takes connections off such a socket without
 * spinning when the process runs out of file descriptors.
 */
#ifndef BLOCKD_SOCKET_H
#define BLOCKD_SOCKET_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A socket file bd_socket_listen() created, to remove when done. */
typedef struct BdSocketFile BdSocketFile;

/*
 * Open a socket listening on @addr, a SocketAddress in its flat form:
 * {"type": "inet", "host": "...", "port": "...", ...}, as the schema
 * checked it (a caller holding the legacy form, whose members sit under
 * "data", moves them up first).  @backlog is listen()'s.
 *
 * Returns a non-blocking, close-on-exec listening fd the caller owns, or
 * -1 with @errp set to qemu-storage-daemon's message.  When the socket
 * is a file this call created, *@file (if @file is not NULL; else the
 * file stays) is set to it, otherwise to NULL: pass it to
 * bd_socket_file_remove() once the fd is closed.  Main thread.
 */
int bd_socket_listen(JsonObject *addr, int backlog, BdSocketFile **file,
                     GError **errp);

/*
 * How long a listener that ran out of descriptors waits before it tries
 * bd_socket_accept() again (unless one of its connections closes first).
 */
#define BD_SOCKET_ACCEPT_RETRY_MS 100

/*
 * Accept a connection on @lfd, a listening socket: returns its fd
 * (non-blocking, close-on-exec), or -1 with errno set.  After EAGAIN or
 * a peer that left before it was accepted (ECONNABORTED...), wait for
 * @lfd to be readable again.  When the process or the system is out of
 * descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), *@exhausted
 * is set to true (else false): the connection stays queued and @lfd
 * stays readable, so a caller that watched it again at once would spin.
 * It must stop watching @lfd and call again after
 * BD_SOCKET_ACCEPT_RETRY_MS, or sooner when it has closed one of its own
 * connections.  The first such failure after a success is logged on
 * stderr, naming @what (for example "NBD server"), once.  Main thread.
 */
int bd_socket_accept(int lfd, const char *what, bool *exhausted);

/*
 * Remove the socket file @file names, if it is still the socket that was
 * bound (not a file put there since) and this is the process that bound
 * it (not a child after fork, nor the parent --daemonize left), then free
 * @file.  NULL is a no-op.  Any thread.
 */
void bd_socket_file_remove(BdSocketFile *file);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_SOCKET_H */
