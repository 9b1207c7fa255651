/*
 * The ringbuf and memory backends of character devices: a ring buffer
 * that keeps the newest bytes written to it, as QEMU 7.2's
 * char-ringbuf.c.  ringbuf-write puts bytes in, ringbuf-read takes them
 * out; a frontend's output (a monitor's replies) goes in too, through a
 * pipe this file drains, and a frontend gets no input.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <glib-unix.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"

bool bd_chardev_is_ringbuf(BdChardev *chr)
{
    return chr->kind == CHARDEV_RINGBUF;
}

size_t bd_chardev_ringbuf_count(BdChardev *chr)
{
    return (size_t)(chr->prod - chr->cons);
}

void bd_chardev_ringbuf_write(BdChardev *chr, const guint8 *buf, size_t len)
{
    /* a buffer of size 0 holds nothing (QEMU would write out of bounds) */
    if (chr->size == 0) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        chr->cbuf[chr->prod++ & (chr->size - 1)] = buf[i];
        if (chr->prod - chr->cons > (guint64)chr->size) {
            chr->cons = chr->prod - chr->size;
        }
    }
}

size_t bd_chardev_ringbuf_read(BdChardev *chr, guint8 *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len && chr->cons != chr->prod; i++) {
        buf[i] = chr->cbuf[chr->cons++ & (chr->size - 1)];
    }
    return i;
}

/* What the frontend wrote: into the ring. */
static gboolean ring_drain(gint fd, GIOCondition cond, gpointer opaque)
{
    BdChardev *chr = opaque;
    guint8 buf[4096];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        bd_chardev_ringbuf_write(chr, buf, (size_t)n);
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        chr->ring_source = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

bool bd_char_ringbuf_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    bool has_size = false;
    int fds[2];

    chr->size = 65536;
    if (!bd_chardev_int_member(data, "size", "backend.data.", &chr->size,
                               &has_size, errp)) {
        return false;
    }
    if (chr->size < 0 || (chr->size & (chr->size - 1))) {
        bd_error_setg(errp, "size of ringbuf chardev must be power of two");
        return false;
    }
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        bd_error_setg(errp, "Failed to make a pipe: %s", g_strerror(errno));
        return false;
    }
    chr->cbuf = g_malloc0(chr->size ? chr->size : 1);
    chr->ring_rd = fds[0];
    chr->out_fd = fds[1];
    chr->ring_source = g_unix_fd_add(chr->ring_rd, G_IO_IN | G_IO_HUP,
                                     ring_drain, chr);
    /* QEMU's ring buffer is open to its frontend from the start */
    chr->connected = true;
    return true;
}

void bd_char_ringbuf_close(BdChardev *chr)
{
    if (chr->ring_source) {
        g_source_remove(chr->ring_source);
        chr->ring_source = 0;
    }
    if (chr->ring_rd >= 0) {
        close(chr->ring_rd);
    }
    if (chr->out_fd >= 0) {
        close(chr->out_fd);
    }
    g_free(chr->cbuf);
}
