/*
 * Connecting to a SocketAddress (see socket-connect.h), as QEMU 7.2's
 * unix_connect_saddr() and inet_connect_saddr() do, with their messages.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <blockd/error.h>
#include <blockd/json.h>

#include "os/socket-connect.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* A boolean member into *@val; false (*@val untouched) when absent. */
static bool opt_bool(JsonObject *a, const char *name, bool *val)
{
    if (!bd_json_value(a, name, G_TYPE_BOOLEAN)) {
        return false;
    }
    *val = bd_json_get_bool(a, name, false);
    return true;
}

/* connect() through EINTR; 0 or -errno. */
static int connect_retry(int fd, const struct sockaddr *sa, socklen_t len)
{
    int rc;

    do {
        rc = connect(fd, sa, len) < 0 ? -errno : 0;
    } while (rc == -EINTR);
    return rc;
}

/*
 * The connection is made blocking (a client waits for it, as QEMU's
 * does); the monitor reads it without blocking.
 */
static void make_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

static int connect_unix(JsonObject *a, GError **errp)
{
    const char *path = bd_json_get_str(a, "path", NULL);
    bool abstract = false, tight = true;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    socklen_t len = sizeof(sun);
    size_t plen;
    int fd, rc;

    if (!path) {
        bd_error_setg(errp, "unix connect: no path specified");
        return -1;
    }
    opt_bool(a, "abstract", &abstract);
    opt_bool(a, "tight", &tight);
    plen = strlen(path);
    if (plen > sizeof(sun.sun_path) ||
        (abstract && plen > sizeof(sun.sun_path) - 1)) {
        bd_error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bd_error_setg(errp, "Failed to create socket: %s", g_strerror(errno));
        return -1;
    }
    if (abstract) {
        memcpy(sun.sun_path + 1, path, plen);
        if (tight) {
            len = offsetof(struct sockaddr_un, sun_path) + 1 + plen;
        }
    } else {
        memcpy(sun.sun_path, path, plen);
    }
    rc = connect_retry(fd, (struct sockaddr *)&sun, len);
    if (rc < 0) {
        bd_error_setg(errp, "Failed to connect to '%s': %s", path,
                      g_strerror(-rc));
        close(fd);
        return -1;
    }
    make_nonblock(fd);
    return fd;
}

/* The family to resolve for, from ipv4/ipv6 (QEMU's rules for clients). */
static int inet_family(JsonObject *a, GError **errp)
{
    bool v4 = false, v6 = false;
    bool has4 = opt_bool(a, "ipv4", &v4);
    bool has6 = opt_bool(a, "ipv6", &v6);

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

static int connect_inet(JsonObject *a, GError **errp)
{
    const char *host = bd_json_get_str(a, "host", NULL);
    const char *port = bd_json_get_str(a, "port", NULL);
    struct addrinfo hints = {
        .ai_flags = AI_CANONNAME | AI_ADDRCONFIG | AI_V4MAPPED,
        .ai_socktype = SOCK_STREAM,
    }, *res = NULL;
    bool keep_alive = false, mptcp = false;
    GError *last = NULL;
    int fd = -1, rc;

    hints.ai_family = inet_family(a, errp);
    if (hints.ai_family < 0) {
        return -1;
    }
    if (!host || !port) {
        bd_error_setg(errp, "host and/or port not specified");
        return -1;
    }
    opt_bool(a, "keep-alive", &keep_alive);
    opt_bool(a, "mptcp", &mptcp);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        bd_error_setg(errp, "address resolution failed for %s:%s: %s", host,
                      port, gai_strerror(rc));
        return -1;
    }
    /* every address in turn; the last failure is the one reported */
    for (struct addrinfo *e = res; e; e = e->ai_next) {
        g_clear_error(&last);
        fd = socket(e->ai_family, e->ai_socktype | SOCK_CLOEXEC,
                    mptcp ? IPPROTO_MPTCP : e->ai_protocol);
        if (fd < 0) {
            bd_error_setg(&last, "Failed to create socket family %d: %s",
                          e->ai_family, g_strerror(errno));
            continue;
        }
        rc = connect_retry(fd, e->ai_addr, e->ai_addrlen);
        if (rc == 0) {
            break;
        }
        close(fd);
        fd = -1;
        bd_error_setg(&last, "Failed to connect to '%s:%s': %s", host, port,
                      g_strerror(-rc));
    }
    freeaddrinfo(res);
    if (fd < 0) {
        g_propagate_error(errp, last);
        return -1;
    }
    g_clear_error(&last);
    if (keep_alive) {
        int on = 1;

        if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0) {
            bd_error_setg(errp, "Unable to set KEEPALIVE: %s",
                          g_strerror(errno));
            close(fd);
            return -1;
        }
    }
    make_nonblock(fd);
    return fd;
}

int bd_socket_connect(JsonObject *addr, GError **errp)
{
    const char *type = bd_json_get_str(addr, "type", "");

    if (strcmp(type, "unix") == 0) {
        return connect_unix(addr, errp);
    }
    if (strcmp(type, "inet") == 0) {
        return connect_inet(addr, errp);
    }
    bd_error_setg(errp, "client mode sockets on '%s' addresses are not "
                  "supported by blockd (supported: unix, inet)", type);
    return -1;
}
