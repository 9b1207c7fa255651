/*
 * A plugin that registers a block driver larger than the daemon's
 * BdBlockDriver, as a plugin built for a future minor would if it were not
 * refused for its minor first.
 */
#include <blockd/blockd.h>

static const struct {
    BdBlockDriver drv;
    void *future[2];
} big_driver = {
    .drv = {
        .struct_size = sizeof(big_driver),
        .name = "big-struct",
        .description = "too big",
    },
};

static bool big_struct_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &big_driver.drv, errp);
}

BD_PLUGIN_DEFINE("block-big-struct", "1.0", "registers a too large driver",
                 "MIT", NULL, big_struct_init);
