/*
 * Listening on a SocketAddress (see <blockd/socket.h>): the one place that
 * turns inet, unix, vsock and fd addresses into listening sockets, with
 * the checks and messages of QEMU 7.2's socket code, and takes
 * connections off them.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <blockd/error.h>
#include <blockd/json.h>
#include <blockd/socket.h>

#include "os/systemd.h"
#include "util/main-thread.h"
#include "util/origin.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

struct BdSocketFile {
    char *path;         /* absolute: removal must survive a chdir */
    dev_t dev;
    ino_t ino;
    pid_t owner;
};

/* A boolean member into *@val; false (*@val untouched) when absent. */
static bool opt_bool(JsonObject *a, const char *name, bool *val)
{
    if (!bd_json_value(a, name, G_TYPE_BOOLEAN)) {
        return false;
    }
    *val = bd_json_get_bool(a, name, false);
    return true;
}

static bool make_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return false;
    }
    fl = fcntl(fd, F_GETFD);
    return fl >= 0 && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == 0;
}

/* ---- inet ---- */

/*
 * The address family to resolve for, from the ipv4/ipv6 flags.  With
 * both unset (or both set on an empty host) one IPv6 socket serves both
 * families: *@dual tells try_bind() to clear IPV6_V6ONLY.
 */
static int inet_family(JsonObject *a, const char *host, bool *dual,
                       GError **errp)
{
    bool v4 = false, v6 = false;
    bool has4 = opt_bool(a, "ipv4", &v4);
    bool has6 = opt_bool(a, "ipv6", &v6);

    *dual = (!has4 && !has6) || (has4 && v4 && has6 && v6);
    if (has4 && has6 && !v4 && !v6) {
        bd_error_setg(errp, "Cannot disable IPv4 and IPv6 at same time");
        return -1;
    }
    if (has4 && v4 && has6 && v6) {
        return host[0] ? AF_UNSPEC : AF_INET6;
    }
    if ((has6 && v6) || (has4 && !v4)) {
        return AF_INET6;
    }
    if ((has4 && v4) || (has6 && !v6)) {
        return AF_INET;
    }
    return AF_UNSPEC;
}

static void set_port(struct addrinfo *e, int port)
{
    if (e->ai_family == AF_INET6) {
        ((struct sockaddr_in6 *)e->ai_addr)->sin6_port = htons(port);
    } else if (e->ai_family == AF_INET) {
        ((struct sockaddr_in *)e->ai_addr)->sin_port = htons(port);
    }
}

static int get_port(struct addrinfo *e)
{
    if (e->ai_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)e->ai_addr)->sin6_port);
    } else if (e->ai_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)e->ai_addr)->sin_port);
    }
    return 0;
}

/*
 * bind(); an IPv6 socket meant for both families that finds the IPv4
 * port taken retries as IPv6 only.
 */
static int try_bind(int fd, struct addrinfo *e, bool dual)
{
    int v6only = dual ? 0 : 1;

    for (;;) {
        if (e->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
                       sizeof(v6only));
        }
        if (bind(fd, e->ai_addr, e->ai_addrlen) == 0) {
            return 0;
        }
        if (e->ai_family != AF_INET6 || errno != EADDRINUSE || v6only) {
            return -1;
        }
        v6only = 1;
    }
}

static int listen_inet(JsonObject *a, int backlog, GError **errp)
{
    const char *host = bd_json_get_str(a, "host", NULL);
    const char *port_in = bd_json_get_str(a, "port", NULL);
    struct addrinfo hints = {
        .ai_flags = AI_PASSIVE,
        .ai_socktype = SOCK_STREAM,
    }, *res = NULL;
    char port[33];      /* QEMU's port buffer: longer values are cut */
    bool numeric = false, keep_alive = false, mptcp = false, dual;
    bool has_to = json_object_has_member(a, "to");
    bool created = false, tried = false;
    int to = has_to ? (int)json_object_get_int_member(a, "to") : 0;
    int fd = -1, rc, err = 0;

    if (!host) {
        bd_error_setg(errp, "host not specified");
        return -1;
    }
    hints.ai_family = inet_family(a, host, &dual, errp);
    if (hints.ai_family < 0) {
        return -1;
    }
    if (opt_bool(a, "numeric", &numeric) && numeric) {
        hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    }
    opt_bool(a, "keep-alive", &keep_alive);
    opt_bool(a, "mptcp", &mptcp);
    g_strlcpy(port, port_in ? port_in : "", sizeof(port));

    rc = getaddrinfo(host[0] ? host : NULL, port[0] ? port : NULL, &hints,
                     &res);
    if (rc != 0) {
        bd_error_setg(errp,
                      "address resolution failed for %s:%s: %s", host, port,
                      gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *e = res; e; e = e->ai_next) {
        int first = get_port(e);
        int last = has_to ? to : first;

        if (mptcp) {
            e->ai_protocol = IPPROTO_MPTCP;
        }
        /* a socket that failed to bind cannot try again: one per port */
        for (int p = first; p <= last; p++) {
            int on = 1;

            if (fd >= 0) {
                close(fd);
                fd = -1;
            }
            tried = true;
            set_port(e, p);
            fd = socket(e->ai_family,
                        e->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        e->ai_protocol);
            if (fd < 0) {
                err = errno;
                if (p == first) {
                    break;      /* e.g. no IPv6 here: next address */
                }
                bd_error_setg(errp,
                              "Failed to recreate failed listening socket: "
                              "%s", g_strerror(err));
                goto fail;
            }
            created = true;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
            if (try_bind(fd, e, dual) < 0) {
                err = errno;
                if (err == EADDRINUSE) {
                    continue;
                }
                bd_error_setg(errp,
                              "Failed to bind socket: %s", g_strerror(err));
                goto fail;
            }
            if (listen(fd, backlog) < 0) {
                err = errno;
                if (err == EADDRINUSE) {
                    continue;
                }
                bd_error_setg(errp, "Failed to listen on socket: %s",
                              g_strerror(err));
                goto fail;
            }
            /* accepted connections inherit it from the listener */
            if (keep_alive &&
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on,
                           sizeof(on)) < 0) {
                bd_error_setg(errp,
                              "Unable to set keep-alive option on socket: "
                              "%s", g_strerror(errno));
                goto fail;
            }
            freeaddrinfo(res);
            return fd;
        }
    }
    /*
     * With 'to' below the port nothing was tried: QEMU then reports a
     * stale errno; the message alone is what its command line prints.
     */
    if (!tried) {
        bd_error_setg(errp, "Failed to create a socket");
    } else {
        bd_error_setg(errp, "%s: %s",
                      created ? "Failed to find an available port"
                            : "Failed to create a socket",
                      g_strerror(err));
    }
fail:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return -1;
}

/* ---- unix ---- */

/*
 * bind() made the socket file with the mode the umask leaves of 0777:
 * at umask 000 anybody could connect.  Keep the owner's and the group's
 * bits only (0660 or narrower), before listen(): until then nobody can
 * connect at all.  Not following a symbolic link: if the directory lets
 * others swap the file, the chmod must not land on what a link names.
 * On failure the file (still the socket bound) is removed.
 */
static bool restrict_socket_mode(const char *path, GError **errp)
{
    struct stat st;

    errno = 0;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        bd_error_setg(errp, "Failed to set the mode of socket %s: %s", path,
                      errno ? g_strerror(errno) : "it is no longer a socket");
        return false;
    }
    if ((st.st_mode & 07777) != (st.st_mode & 0660) &&
        fchmodat(AT_FDCWD, path, st.st_mode & 0660,
                 AT_SYMLINK_NOFOLLOW) < 0) {
        bd_error_setg(errp, "Failed to set the mode of socket %s: %s", path,
                      g_strerror(errno));
        unlink(path);
        return false;
    }
    return true;
}

static int listen_unix(JsonObject *a, int backlog, BdSocketFile **file,
                       GError **errp)
{
    const char *path = bd_json_get_str(a, "path", NULL);
    bool abstract = false, tight = true;
    g_autofree char *tmp = NULL;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    socklen_t len = sizeof(sun);
    struct stat st;
    size_t plen;
    int fd;

    opt_bool(a, "abstract", &abstract);
    opt_bool(a, "tight", &tight);
    if (!path) {
        path = "";
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        bd_error_setg(errp,
                      "Failed to create Unix socket: %s", g_strerror(errno));
        return -1;
    }
    if (!path[0] && !abstract) {
        /* a fresh name in the temporary directory, as QEMU makes one */
        tmp = g_build_filename(g_get_tmp_dir(), "blockd-socket-XXXXXX",
                               NULL);
        path = tmp;
    }
    plen = strlen(path);
    /* a path may fill sun_path without its NUL; an abstract name after one */
    if (plen > sizeof(sun.sun_path) ||
        (abstract && plen > sizeof(sun.sun_path) - 1)) {
        bd_error_setg(errp, "UNIX socket path '%s' is too long", path);
        goto fail;
    }
    if (tmp) {
        int tfd = g_mkstemp(tmp);

        if (tfd < 0) {
            bd_error_setg(errp,
                          "Failed to make a temporary socket %s: %s", tmp,
                          g_strerror(errno));
            goto fail;
        }
        close(tfd);
        unlink(tmp);
    } else if (!abstract && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
               unlink(path) < 0 && errno != ENOENT) {
        /*
         * A stale socket is replaced, as QEMU does; unlike QEMU, any
         * other file is left alone and bind() fails on it.
         */
        bd_error_setg(errp, "Failed to unlink socket %s: %s", path,
                      g_strerror(errno));
        goto fail;
    }
    if (abstract) {
        memcpy(sun.sun_path + 1, path, plen);
        if (tight) {
            len = offsetof(struct sockaddr_un, sun_path) + 1 + plen;
        }
    } else {
        memcpy(sun.sun_path, path, plen);
    }
    if (bind(fd, (struct sockaddr *)&sun, len) < 0) {
        bd_error_setg(errp, "Failed to bind socket to %s: %s", path,
                      g_strerror(errno));
        goto fail;
    }
    if (!abstract && !restrict_socket_mode(path, errp)) {
        goto fail;
    }
    if (listen(fd, backlog) < 0) {
        bd_error_setg(errp,
                      "Failed to listen on socket: %s", g_strerror(errno));
        if (!abstract) {
            unlink(path);
        }
        goto fail;
    }
    if (!abstract && stat(path, &st) == 0) {
        if (file) {
            BdSocketFile *f = g_new0(BdSocketFile, 1);

            f->path = g_canonicalize_filename(path, NULL);
            f->dev = st.st_dev;
            f->ino = st.st_ino;
            f->owner = getpid();
            *file = f;
        }
    }
    return fd;

fail:
    close(fd);
    return -1;
}

void bd_socket_file_remove(BdSocketFile *file)
{
    struct stat st;

    if (!file) {
        return;
    }
    if (getpid() == file->owner && stat(file->path, &st) == 0 &&
        S_ISSOCK(st.st_mode) && st.st_dev == file->dev &&
        st.st_ino == file->ino) {
        unlink(file->path);
    }
    g_free(file->path);
    g_free(file);
}

/* ---- vsock ---- */

/* QEMU's parse_uint_full(): decimal, no sign, the whole string. */
static bool parse_u32(const char *s, unsigned int *out)
{
    unsigned long long v;
    char *end;

    while (g_ascii_isspace(*s)) {
        s++;
    }
    if (!g_ascii_isdigit(*s)) {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX) {
        return false;
    }
    *out = (unsigned int)v;
    return true;
}

static int listen_vsock(JsonObject *a, int backlog, GError **errp)
{
    const char *cid = bd_json_get_str(a, "cid", NULL);
    const char *port = bd_json_get_str(a, "port", NULL);
    struct sockaddr_vm svm = { .svm_family = AF_VSOCK };
    int fd;

    if (!parse_u32(cid ? cid : "", &svm.svm_cid)) {
        bd_error_setg(errp, "Failed to parse cid '%s'", cid ? cid : "");
        return -1;
    }
    if (!parse_u32(port ? port : "", &svm.svm_port)) {
        bd_error_setg(errp, "Failed to parse port '%s'", port ? port : "");
        return -1;
    }
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        bd_error_setg(errp, "Failed to create socket: %s", g_strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) < 0) {
        bd_error_setg(errp, "Failed to bind socket: %s", g_strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        bd_error_setg(errp,
                      "Failed to listen on socket: %s", g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- fd ---- */

/* qemu_strtoi(): optional space and sign, decimal, the whole string. */
static bool parse_int(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < INT_MIN || v > INT_MAX) {
        return false;
    }
    *out = (int)v;
    return true;
}

/*
 * A monitor client names an fd it passed to the monitor; nobody can pass
 * fds to blockd's monitors (qemu-storage-daemon has no getfd either), so
 * only socket-activation names work there.  Elsewhere (the command line)
 * a number is an fd the daemon inherited.
 */
static int listen_fd(JsonObject *a, int backlog, GError **errp)
{
    const char *str = bd_json_get_str(a, "str", NULL);
    int fd;

    if (!str) {
        str = "";
    }
    fd = bd_socket_activation_fd(str);
    if (fd < 0) {
        if (bd_socket_activation_passed() && !g_ascii_isdigit(str[0])) {
            bd_error_setg(errp,
                          "File descriptor named '%s' has not been found",
                          str);
            return -1;
        }
        if (bd_request_origin() == BD_ORIGIN_CLIENT) {
            bd_error_setg(errp, "only QEMU supports file descriptor "
                          "passing");
            return -1;
        }
        if (!parse_int(str, &fd)) {
            bd_error_setg(errp, "Unable to parse FD number %s", str);
            return -1;
        }
    }
    {
        int type;
        socklen_t len = sizeof(type);

        if (fd < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
            bd_error_setg(errp, "File descriptor '%s' is not a socket", str);
            return -1;
        }
    }
    /* listening already (the usual case) or not yet: listen() does both */
    if (listen(fd, backlog) < 0) {
        bd_error_setg(errp,
                      "Failed to listen on fd socket: %s", g_strerror(errno));
        return -1;
    }
    if (!make_nonblock_cloexec(fd)) {
        bd_error_setg(errp,
                      "Cannot make file descriptor '%s' non-blocking: %s", str,
                      g_strerror(errno));
        return -1;
    }
    return fd;
}

int bd_socket_listen(JsonObject *addr, int backlog, BdSocketFile **file,
                     GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    const char *type = bd_json_get_str(addr, "type", NULL);

    if (file) {
        *file = NULL;
    }
    if (!type) {
        bd_error_setg(errp, "Parameter 'type' is missing");
        return -1;
    }
    if (strcmp(type, "inet") == 0) {
        return listen_inet(addr, backlog, errp);
    } else if (strcmp(type, "unix") == 0) {
        return listen_unix(addr, backlog, file, errp);
    } else if (strcmp(type, "vsock") == 0) {
        return listen_vsock(addr, backlog, errp);
    } else if (strcmp(type, "fd") == 0) {
        return listen_fd(addr, backlog, errp);
    }
    bd_error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
    return -1;
}

/* ---- accepting ---- */

/*
 * Whether exhaustion was logged since the last successful accept: one
 * line per episode, however many listeners retry meanwhile.
 */
static bool exhaustion_logged;

int bd_socket_accept(int lfd, const char *what, bool *exhausted)
{
    BD_ASSERT_MAIN_LOOP();
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;

    *exhausted = false;
    if (fd >= 0) {
        exhaustion_logged = false;
        return fd;
    }
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        *exhausted = true;
        if (!exhaustion_logged) {
            exhaustion_logged = true;
            /* strerror(): g_strerror() may convert, which opens files */
            fprintf(stderr, "blockd: warning: %s: cannot accept a "
                    "connection: %s; trying again every %d ms\n", what,
                    strerror(err), BD_SOCKET_ACCEPT_RETRY_MS);
        }
    }
    errno = err;
    return -1;
}
