/* A descriptor whose magic is wrong: not a blockd plugin. */
#include <blockd/blockd.h>

static bool bad_magic_init(BdRegistry *reg, GError **errp)
{
    return true;
}

BD_PLUGIN_EXPORT const BdPluginDescriptor BD_PLUGIN_SYMBOL = {
    .magic = UINT64_C(0x0123456789abcdef),
    .abi_major = BD_PLUGIN_ABI_MAJOR,
    .abi_minor = BD_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(BdPluginDescriptor),
    .name = "block-bad-magic",
    .version = "1.0",
    .init = bad_magic_init,
};
