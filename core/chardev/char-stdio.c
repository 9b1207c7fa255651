/*
 * The stdio backend of character devices: stdin and stdout, one client
 * for the daemon's whole life (see chardev.h).
 */
#include <fcntl.h>
#include <unistd.h>

#include <blockd/error.h>

#include "chardev/chardev-int.h"
#include "os/daemonize.h"

static void set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    fl = fcntl(fd, F_GETFD);
    if (fl >= 0) {
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}

bool bd_char_stdio_open(BdChardev *chr, JsonObject *data, GError **errp)
{
    bool sig = true;

    if (bd_daemonize_active()) {
        bd_error_setg(errp, "cannot use stdio with -daemonize");
        return false;
    }
    if (bd_chardev_kind_in_use(CHARDEV_STDIO)) {
        bd_error_setg(errp, "cannot use stdio by multiple character "
                      "devices");
        return false;
    }
    /* 'signal' is accepted; blockd never changes the terminal's modes */
    if (data && !bd_chardev_bool_member(data, "signal", "backend.data.", &sig,
                                        errp)) {
        return false;
    }
    chr->kind = CHARDEV_STDIO;
    chr->in_fd = STDIN_FILENO;
    chr->out_fd = STDOUT_FILENO;
    set_nonblock_cloexec(STDIN_FILENO);
    set_nonblock_cloexec(STDOUT_FILENO);
    chr->connected = true;
    return true;
}
