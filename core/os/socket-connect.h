/*
 * Connecting to a SocketAddress (the client side of <blockd/socket.h>),
 * with QEMU 7.2's checks and messages: what a client-mode socket chardev
 * needs.
 */
#ifndef BLOCKD_CORE_OS_SOCKET_CONNECT_H
#define BLOCKD_CORE_OS_SOCKET_CONNECT_H

#include <glib.h>
#include <json-glib/json-glib.h>

/*
 * Connect to @addr, a SocketAddress in its flat form ({"type": "unix",
 * "path": ...} or {"type": "inet", "host": ..., "port": ...} with
 * ipv4/ipv6/keep-alive/mptcp, or unix's abstract/tight).  Blocks until
 * the connection is made or refused.  Returns a non-blocking,
 * close-on-exec fd, or -1 with @errp set to QEMU's message ("Failed to
 * connect to 'PATH': No such file or directory").  vsock and fd
 * addresses are refused: blockd does not connect to them.  Any thread
 * (it touches nothing shared; @addr must not change meanwhile).
 */
int bd_socket_connect(JsonObject *addr, GError **errp);

#endif /* BLOCKD_CORE_OS_SOCKET_CONNECT_H */
