/*
 * The udp backend of character devices: a datagram socket bound to
 * 'local' and connected to 'remote', as QEMU 7.2's socket_dgram() makes
 * it, with its messages.  QEMU never reports such a device open to its
 * frontend, so a monitor on it would never greet; blockd refuses a
 * monitor there (see monitor.c) and keeps the device for its users to
 * come.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"

/* The family from ipv4/ipv6, QEMU's inet_ai_family_from_address(). */
static int inet_family(JsonObject *a, GError **errp)
{
    bool v4 = false, v6 = false, has4 = false, has6 = false;
    GError *err = NULL;

    has4 = json_object_has_member(a, "ipv4");
    has6 = json_object_has_member(a, "ipv6");
    if (!bd_chardev_bool_member(a, "ipv4", "backend.data.remote.data.", &v4,
                                &err) ||
        !bd_chardev_bool_member(a, "ipv6", "backend.data.remote.data.", &v6,
                                &err)) {
        g_propagate_error(errp, err);
        return -1;
    }
    if (has4 && has6 && !v4 && !v6) {
        bd_error_setg(errp, "Cannot disable IPv4 and IPv6 at same time");
        return -1;
    }
    if (has4 && v4 && has6 && v6) {
        return AF_UNSPEC;
    }
    if ((has6 && v6) || (has4 && !v4)) {
        return AF_INET6;
    }
    if ((has4 && v4) || (has6 && !v6)) {
        return AF_INET;
    }
    return AF_UNSPEC;
}

/* The 'data' of an inet SocketAddressLegacy named @what, or NULL. */
static JsonObject *inet_data(JsonObject *data, const char *what,
                             bool required, GError **errp)
{
    g_autofree char *path = g_strdup_printf("backend.data.%s.", what);
    JsonObject *addr = bd_chardev_obj_member(data, what, "backend.data.",
                                             required, errp);
    const char *type;

    if (!addr) {
        return NULL;
    }
    type = bd_chardev_str_member(addr, "type", path, true, errp);
    if (!type) {
        return NULL;
    }
    if (strcmp(type, "inet") != 0) {
        bd_error_setg(errp, "socket type unsupported for datagram");
        return NULL;
    }
    return bd_chardev_obj_member(addr, "data", path, true, errp);
}

bool bd_char_udp_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    struct addrinfo hints = {
        .ai_flags = AI_CANONNAME | AI_V4MAPPED | AI_ADDRCONFIG,
        .ai_socktype = SOCK_DGRAM,
    }, *peer = NULL, *local = NULL;
    JsonObject *remote, *loc = NULL;
    const char *addr, *port;
    GError *err = NULL;
    int fd = -1, rc, on = 1;

    remote = inet_data(data, "remote", true, errp);
    if (!remote) {
        return false;
    }
    if (json_object_has_member(data, "local")) {
        loc = inet_data(data, "local", false, errp);
        if (!loc) {
            return false;
        }
    }
    hints.ai_family = inet_family(remote, &err);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    addr = bd_chardev_str_member(remote, "host", "", false, NULL);
    port = bd_chardev_str_member(remote, "port", "", false, NULL);
    if (!addr || !addr[0]) {
        addr = "localhost";
    }
    if (!port || !port[0]) {
        bd_error_setg(errp, "remote port not specified");
        return false;
    }
    rc = getaddrinfo(addr, port, &hints, &peer);
    if (rc != 0) {
        bd_error_setg(errp, "address resolution failed for %s:%s: %s", addr,
                      port, gai_strerror(rc));
        return false;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_PASSIVE;
    hints.ai_family = peer->ai_family;
    hints.ai_socktype = SOCK_DGRAM;
    addr = loc ? bd_chardev_str_member(loc, "host", "", false, NULL) : NULL;
    port = loc ? bd_chardev_str_member(loc, "port", "", false, NULL) : NULL;
    if (addr && !addr[0]) {
        addr = NULL;
    }
    if (!port || !port[0]) {
        port = "0";
    }
    rc = getaddrinfo(addr, port, &hints, &local);
    if (rc != 0) {
        /* QEMU prints a missing host as glibc prints NULL */
        bd_error_setg(errp, "address resolution failed for %s:%s: %s",
                      addr ? addr : "(null)", port, gai_strerror(rc));
        goto out;
    }
    fd = socket(peer->ai_family, peer->ai_socktype | SOCK_CLOEXEC |
                SOCK_NONBLOCK, peer->ai_protocol);
    if (fd < 0) {
        bd_error_setg(errp, "Failed to create socket family %d: %s",
                      peer->ai_family, g_strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, local->ai_addr, local->ai_addrlen) < 0) {
        bd_error_setg(errp, "Failed to bind socket: %s", g_strerror(errno));
        goto fail;
    }
    if (connect(fd, peer->ai_addr, peer->ai_addrlen) < 0) {
        bd_error_setg(errp, "Failed to connect to '%s:%s': %s",
                      addr ? addr : "(null)", port, g_strerror(errno));
        goto fail;
    }
    chr->in_fd = fd;
    freeaddrinfo(peer);
    freeaddrinfo(local);
    return true;

fail:
    close(fd);
out:
    freeaddrinfo(peer);
    if (local) {
        freeaddrinfo(local);
    }
    return false;
}
