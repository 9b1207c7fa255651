/*
 * systemd readiness notification and socket activation (see systemd.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "os/systemd.h"

/* The first fd systemd passes (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START 3

typedef struct ActivatedFd {
    int fd;
    char *name;
    bool taken;
} ActivatedFd;

static GArray *activated;       /* of ActivatedFd */

static bool parse_uint(const char *s, unsigned long *out)
{
    char *end;

    if (!s || !g_ascii_isdigit(*s)) {
        return false;
    }
    errno = 0;
    *out = strtoul(s, &end, 10);
    return errno == 0 && *end == '\0';
}

void bd_socket_activation_init(void)
{
    const char *pid_s = getenv("LISTEN_PID");
    const char *fds_s = getenv("LISTEN_FDS");
    const char *names_s = getenv("LISTEN_FDNAMES");
    g_auto(GStrv) names = NULL;
    unsigned long pid, n;

    if (activated) {
        return;
    }
    activated = g_array_new(false, true, sizeof(ActivatedFd));
    if (parse_uint(pid_s, &pid) && pid == (unsigned long)getpid() &&
        parse_uint(fds_s, &n) && n > 0 && n < 4096) {
        names = names_s ? g_strsplit(names_s, ":", -1) : NULL;
        for (unsigned long i = 0; i < n; i++) {
            ActivatedFd a = { .fd = LISTEN_FDS_START + (int)i };
            int fl = fcntl(a.fd, F_GETFD);

            if (fl < 0) {
                continue;       /* not really open: nothing to hand out */
            }
            fcntl(a.fd, F_SETFD, fl | FD_CLOEXEC);
            a.name = g_strdup(names && i < g_strv_length(names) &&
                              names[i][0] ? names[i] : "unknown");
            g_array_append_val(activated, a);
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

int bd_socket_activation_fd(const char *name)
{
    for (guint i = 0; activated && i < activated->len; i++) {
        ActivatedFd *a = &g_array_index(activated, ActivatedFd, i);

        if (!a->taken && strcmp(a->name, name) == 0) {
            a->taken = true;
            return a->fd;
        }
    }
    return -1;
}

bool bd_socket_activation_passed(void)
{
    return activated && activated->len > 0;
}

unsigned bd_socket_activation_unused(void)
{
    unsigned n = 0;

    for (guint i = 0; activated && i < activated->len; i++) {
        n += !g_array_index(activated, ActivatedFd, i).taken;
    }
    return n;
}

bool bd_systemd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    socklen_t len;
    size_t plen;
    ssize_t sent;
    int fd;

    if (!path || !*path) {
        return true;
    }
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)) {
        errno = EINVAL;
        return false;
    }
    memcpy(sun.sun_path, path, plen);
    if (path[0] == '@') {
        sun.sun_path[0] = '\0';         /* abstract namespace */
    }
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    do {
        sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                      (struct sockaddr *)&sun, len);
    } while (sent < 0 && errno == EINTR);
    close(fd);
    return sent == (ssize_t)strlen(state);
}
