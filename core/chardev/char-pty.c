/*
 * The pty backend of character devices: a pseudo-terminal whose slave
 * side a user opens (screen, minicom, socat), as QEMU 7.2's char-pty.c.
 * The device counts as connected while the slave side is open: QEMU
 * looks every second (POLLHUP on the master while nobody has it), and
 * so does this file, while a frontend is attached.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"
#include "util/origin.h"

#define PTY_POLL_MS 1000

/* A master in raw mode; its slave's path in @name. */
static int open_pty_raw(char **name)
{
    char path[64];
    struct termios tty;
    int master, slave;

    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) {
        return -1;
    }
    if (grantpt(master) < 0 || unlockpt(master) < 0 ||
        ptsname_r(master, path, sizeof(path)) != 0) {
        goto fail;
    }
    /* raw: bytes pass as they are, as QEMU sets the slave up */
    slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        goto fail;
    }
    if (tcgetattr(slave, &tty) == 0) {
        cfmakeraw(&tty);
        tcsetattr(slave, TCSAFLUSH, &tty);
    }
    close(slave);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    *name = g_strdup(path);
    return master;

fail: {
        int err = errno;

        close(master);
        errno = err;
        return -1;
    }
}

bool bd_char_pty_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    chr->in_fd = chr->out_fd = open_pty_raw(&chr->pty_path);
    if (chr->in_fd < 0) {
        bd_error_setg(errp, "Failed to create PTY: %s", g_strerror(errno));
        return false;
    }
    chr->pty_filename = g_strdup_printf("pty:%s", chr->pty_path);
    /* QEMU prints it on its command line's behalf only, not a client's */
    if (bd_request_origin() == BD_ORIGIN_DAEMON) {
        printf("char device redirected to %s (label %s)\n", chr->pty_path,
               chr->id);
        fflush(stdout);
    }
    return true;
}

static gboolean pty_timer(gpointer opaque);

/* Connected when someone holds the slave side open. */
static void pty_check(BdChardev *chr)
{
    struct pollfd pfd = { .fd = chr->in_fd, .events = POLLIN };

    if (chr->connected || !chr->ops) {
        return;
    }
    if (poll(&pfd, 1, 0) >= 0 && !(pfd.revents & POLLHUP)) {
        chr->connected = true;
        chr->ops->open(chr->opaque, chr->in_fd, chr->out_fd);
        return;
    }
    if (!chr->pty_timer) {
        chr->pty_timer = g_timeout_add(PTY_POLL_MS, pty_timer, chr);
    }
}

static gboolean pty_timer(gpointer opaque)
{
    BdChardev *chr = opaque;

    chr->pty_timer = 0;
    pty_check(chr);
    return G_SOURCE_REMOVE;
}

void bd_char_pty_watch(BdChardev *chr)
{
    pty_check(chr);
}

void bd_char_pty_unwatch(BdChardev *chr)
{
    if (chr->pty_timer) {
        g_source_remove(chr->pty_timer);
        chr->pty_timer = 0;
    }
}

void bd_char_pty_close(BdChardev *chr)
{
    bd_char_pty_unwatch(chr);
    if (chr->in_fd >= 0) {
        close(chr->in_fd);
    }
    g_free(chr->pty_path);
    g_free(chr->pty_filename);
}
