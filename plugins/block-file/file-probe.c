/*
 * block-file: the alignment O_DIRECT needs, found as QEMU's file driver
 * finds it.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#include "file-state.h"

#define PROBE_MAX_ALIGN 4096

/* True unless a read of @len at @buf is refused for alignment (EINVAL). */
static bool io_aligned(int fd, void *buf, size_t len)
{
    ssize_t ret = pread(fd, buf, len, 0);

    return ret >= 0 || errno != EINVAL;
}

bool file_probe_alignment(FileState *s, GError **errp)
{
    size_t max_align = MAX(PROBE_MAX_ALIGN, (size_t)getpagesize());
    uint32_t req = 0;
    void *buf = NULL;

    if (!(s->open_flags & O_DIRECT)) {
        s->request_alignment = 1;
        s->buf_align = 1;
        return true;
    }
    if (s->is_blk) {
        unsigned int sector = 0;

        if (ioctl(s->fd, BLKSSZGET, &sector) == 0 && sector) {
            req = sector;
            s->buf_align = sector;
        }
    }

    /* Twice the biggest alignment, so buf + align is aligned to align
     * but not to 2 * align. */
    if (posix_memalign(&buf, 2 * max_align, 2 * max_align)) {
        bd_error_setg(errp, "Could not find working O_DIRECT alignment");
        return false;
    }
    /*
     * Sizes 1, then 512 and up, as QEMU 7.2 tries them.  A file system
     * that takes any alignment (tmpfs, or a hole at offset 0 of an ext4
     * file) accepts 1: QEMU then plays safe with the largest alignment,
     * and so does blockd, so that both report the same limits.
     */
    if (!req) {
        for (size_t align = 1; align <= max_align;
             align = align == 1 ? 512 : align << 1) {
            if (io_aligned(s->fd, buf, align)) {
                req = align == 1 ? max_align : align;
                break;
            }
        }
    }
    if (!s->buf_align) {
        for (size_t align = 1; align <= max_align;
             align = align == 1 ? 512 : align << 1) {
            if (io_aligned(s->fd, (char *)buf + align, max_align)) {
                s->buf_align = align == 1 ? req : align;
                break;
            }
        }
    }
    free(buf);
    if (!req || !s->buf_align) {
        bd_error_setg(errp, "Could not find working O_DIRECT alignment");
        return false;
    }
    s->request_alignment = req;
    return true;
}
