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
 */
#ifndef BLOCKD_SOCKET_H
#define BLOCKD_SOCKET_H

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
