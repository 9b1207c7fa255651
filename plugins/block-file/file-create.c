/*
 * blockdev-create for the file driver (BlockdevCreateOptionsFile), step
 * for step as QEMU's file-posix: create the file (O_CREAT, never
 * O_EXCL), take the write and resize lock bytes so that no other QEMU
 * process uses it meanwhile, empty it, try the nocow flag and the extent
 * size hint (both optimisations: QEMU ignores a file system that has
 * neither, and so does this), then resize it with the preallocation asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#include <blockd/blockd.h>

#include "file-lock.h"
#include "file-state.h"

static bool parse_prealloc(const char *name, BdPreallocMode *mode)
{
    static const char *const names[] = {
        [BD_PREALLOC_OFF] = "off",
        [BD_PREALLOC_METADATA] = "metadata",
        [BD_PREALLOC_FALLOC] = "falloc",
        [BD_PREALLOC_FULL] = "full",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(name, names[i])) {
            *mode = (BdPreallocMode)i;
            return true;
        }
    }
    return false;
}

/* FS_NOCOW_FL (btrfs): an optimisation; failure does not fail the create. */
static void try_nocow(int fd)
{
    int attr;

    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
        attr |= FS_NOCOW_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &attr) < 0) {
            /* not every file system has the flag: as QEMU, go on */
        }
    }
}

/*
 * The extent size hint (XFS): not fatal; like QEMU, say so on stderr only
 * when the option was given explicitly (and is not 0).
 */
static void try_extent_size_hint(int fd, uint64_t hint, bool explicit)
{
    struct fsxattr attr;
    int ret = ioctl(fd, FS_IOC_FSGETXATTR, &attr);

    if (ret == 0) {
        attr.fsx_xflags |= FS_XFLAG_EXTSIZE;
        attr.fsx_extsize = (uint32_t)hint;
        ret = ioctl(fd, FS_IOC_FSSETXATTR, &attr);
    }
    if (ret < 0 && explicit && hint) {
        fprintf(stderr, "warning: Failed to set extent size hint: %s\n",
                g_strerror(errno));
    }
}

bd_coroutine_fn
int file_co_create(JsonObject *opts, GError **errp)
{
    const char *filename = bd_json_get_str(opts, "filename", "");
    int64_t size = bd_json_get_int(opts, "size", 0);
    bool nocow = bd_json_get_bool(opts, "nocow", false);
    bool has_hint = json_object_has_member(opts, "extent-size-hint");
    /* 'size' in the schema: above INT64_MAX reads as negative */
    int64_t hint = bd_json_get_int(opts, "extent-size-hint", 1024 * 1024);
    BdPreallocMode prealloc = BD_PREALLOC_OFF;
    uint64_t perm = BD_PERM_WRITE | BD_PERM_RESIZE;
    uint64_t shared = BD_PERM_ALL & ~BD_PERM_RESIZE;
    FileLockState held = { 0, 0 };
    int fd, ret;

    /* the schema allows only PreallocMode's values */
    parse_prealloc(bd_json_get_str(opts, "preallocation", "off"), &prealloc);
    if (hint < 0 || (uint64_t)hint > UINT32_MAX) {
        bd_error_setg(errp, "Extent size hint is too large");
        return -EINVAL;
    }
    fd = open(filename, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        ret = -errno;
        bd_error_setg(errp, "Could not create '%s': %s", filename,
                      g_strerror(-ret));
        return ret;
    }
    if (!file_lock_apply(fd, &held, perm, ~shared & BD_PERM_ALL, false,
                         errp) ||
        !file_lock_check(fd, perm, shared, errp)) {
        ret = -EAGAIN;
        goto out;
    }
    ret = file_co_truncate_fd(fd, 0, BD_PREALLOC_OFF, errp);
    if (ret < 0) {
        goto out;
    }
    if (nocow) {
        try_nocow(fd);
    }
    try_extent_size_hint(fd, (uint64_t)hint, has_hint);
    ret = file_co_truncate_fd(fd, size, prealloc, errp);
out:
    /* closing the descriptor releases its lock bytes */
    if (close(fd) < 0 && ret == 0) {
        ret = -errno;
        bd_error_setg(errp, "Could not close the new file: %s",
                      g_strerror(-ret));
    }
    return ret;
}
