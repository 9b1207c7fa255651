/*
 * A well-formed plugin providing the block driver "stale"; the tests give
 * it a manifest that promises more than it registers.
 */
#include <blockd/blockd.h>

static const BdBlockDriver stale_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "stale",
    .description = "registered by block-stale",
};

static bool stale_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &stale_driver, errp);
}

BD_PLUGIN_DEFINE("block-stale", "1.0", "the driver stale", "MIT", NULL,
                 stale_init);
