/*
 * Built twice, as block-dup-a and block-dup-b: both register the block
 * driver "dup", so the second one found must be refused.
 */
#include <blockd/blockd.h>

static const BdBlockDriver dup_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "dup",
    .description = "claimed by two plugins",
};

static bool dup_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &dup_driver, errp);
}

BD_PLUGIN_DEFINE(DUP_PLUGIN_NAME, "1.0", "one of two plugins providing dup",
                 "MIT", NULL, dup_init);
