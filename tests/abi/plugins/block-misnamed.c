/* A descriptor whose name is not the file's stem. */
#include <blockd/blockd.h>

static bool misnamed_init(BdRegistry *reg, GError **errp)
{
    return true;
}

BD_PLUGIN_EXPORT const BdPluginDescriptor BD_PLUGIN_SYMBOL = {
    .magic = BD_PLUGIN_MAGIC,
    .abi_major = BD_PLUGIN_ABI_MAJOR,
    .abi_minor = BD_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(BdPluginDescriptor),
    .name = "block-other",
    .version = "1.0",
    .init = misnamed_init,
};
