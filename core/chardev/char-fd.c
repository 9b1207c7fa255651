/*
 * The backends of character devices on descriptors opened once: "file"
 * (output to a file, input from another) and "pipe" (named pipes), as
 * QEMU 7.2's char-file.c and char-pipe.c open them, with their messages.
 * The device counts as connected from the start: a monitor greets at
 * once, and is done when the input ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"

/* QEMU's qemu_open(): the message names the file. */
static int open_path(const char *path, int flags, GError **errp)
{
    int fd;

    do {
        fd = open(path, flags | O_CLOEXEC | O_NONBLOCK, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        bd_error_setg(errp, "Could not open '%s': %s", path,
                      g_strerror(errno));
    }
    return fd;
}

bool bd_char_file_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    const char *out, *in;
    bool append = false;

    out = bd_chardev_str_member(data, "out", "backend.data.", true, errp);
    if (!out) {
        return false;
    }
    in = bd_chardev_str_member(data, "in", "backend.data.", false, errp);
    if (!in && json_object_has_member(data, "in")) {
        return false;
    }
    if (!bd_chardev_bool_member(data, "append", "backend.data.", &append,
                                errp)) {
        return false;
    }
    chr->out_fd = open_path(out, O_WRONLY | O_CREAT |
                            (append ? O_APPEND : O_TRUNC), errp);
    if (chr->out_fd < 0) {
        return false;
    }
    if (in) {
        chr->in_fd = open_path(in, O_RDONLY, errp);
        if (chr->in_fd < 0) {
            return false;
        }
    }
    chr->connected = true;
    return true;
}

bool bd_char_pipe_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    const char *device;
    g_autofree char *in_path = NULL, *out_path = NULL;

    device = bd_chardev_str_member(data, "device", "backend.data.", true,
                                   errp);
    if (!device) {
        return false;
    }
    /*
     * DEVICE.in and DEVICE.out if both open, else DEVICE both ways.
     * O_RDWR, as QEMU: opening a FIFO does not wait for the other end,
     * and its reader never sees EOF when a writer goes.
     */
    in_path = g_strdup_printf("%s.in", device);
    out_path = g_strdup_printf("%s.out", device);
    chr->in_fd = open_path(in_path, O_RDWR, NULL);
    chr->out_fd = open_path(out_path, O_RDWR, NULL);
    if (chr->in_fd < 0 || chr->out_fd < 0) {
        if (chr->in_fd >= 0) {
            close(chr->in_fd);
        }
        if (chr->out_fd >= 0) {
            close(chr->out_fd);
        }
        chr->in_fd = chr->out_fd = open_path(device, O_RDWR, errp);
        if (chr->in_fd < 0) {
            return false;
        }
    }
    chr->connected = true;
    return true;
}
