/*
 * block-null: the null-co and null-aio drivers, which read as zeroes (or
 * garbage, unless read-zeroes) and discard writes.  Useful for testing and
 * for measuring the block layer without a disk.
 *
 * The two drivers behave the same here; QEMU distinguishes them only by how
 * completion is delivered, which blockd's request layer does the same way
 * for both.
 */
#include <blockd/blockd.h>

#include "block-null-schema.h"

static const BdBlockDriver null_co_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "null-co",
    .description = "reads return zeroes, writes are discarded "
                   "(coroutine completion)",
};

static const BdBlockDriver null_aio_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "null-aio",
    .description = "reads return zeroes, writes are discarded "
                   "(callback completion)",
};

static bool block_null_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &null_co_driver, errp) &&
           bd_registry_add_block_driver(reg, &null_aio_driver, errp);
}

BD_PLUGIN_DEFINE("block-null", BLOCKD_PLUGIN_VERSION,
                 "null block drivers (null-co, null-aio) for testing",
                 "GPL-2.0-or-later", block_null_schema, block_null_init);
