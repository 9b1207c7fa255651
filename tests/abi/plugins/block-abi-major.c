/*
 * A plugin built for the next ABI major: the daemon must refuse it from its
 * descriptor (or its manifest) before running any of its code.  The
 * constructor leaves a marker file when $BLOCKD_ABI_MARKER is set, so a
 * test can tell whether the code ran.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <blockd/blockd.h>

static void __attribute__((constructor)) leave_marker(void)
{
    const char *marker = getenv("BLOCKD_ABI_MARKER");

    if (marker) {
        int fd = open(marker, O_WRONLY | O_CREAT, 0600);
        if (fd >= 0) {
            close(fd);
        }
    }
}

static bool abi_major_init(BdRegistry *reg, GError **errp)
{
    return true;
}

BD_PLUGIN_EXPORT const BdPluginDescriptor BD_PLUGIN_SYMBOL = {
    .magic = BD_PLUGIN_MAGIC,
    .abi_major = BD_PLUGIN_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(BdPluginDescriptor),
    .name = "block-abi-major",
    .version = "1.0",
    .init = abi_major_init,
};
