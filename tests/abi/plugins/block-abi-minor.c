/* A plugin built for a newer ABI minor than the daemon's. */
#include <blockd/blockd.h>

static bool abi_minor_init(BdRegistry *reg, GError **errp)
{
    return true;
}

BD_PLUGIN_EXPORT const BdPluginDescriptor BD_PLUGIN_SYMBOL = {
    .magic = BD_PLUGIN_MAGIC,
    .abi_major = BD_PLUGIN_ABI_MAJOR,
    .abi_minor = BD_PLUGIN_ABI_MINOR + 1,
    .struct_size = sizeof(BdPluginDescriptor),
    .name = "block-abi-minor",
    .version = "1.0",
    .init = abi_minor_init,
};
