/* A plugin that registers a block driver smaller than the ABI 1.0 layout. */
#include <stddef.h>

#include <blockd/blockd.h>

static const BdBlockDriver small_driver = {
    .struct_size = offsetof(BdBlockDriver, name) + sizeof(const char *),
    .name = "small-struct",
};

static bool small_struct_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &small_driver, errp);
}

BD_PLUGIN_DEFINE("block-small-struct", "1.0", "registers a too small driver",
                 "MIT", NULL, small_struct_init);
