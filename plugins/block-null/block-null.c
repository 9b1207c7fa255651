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

BD_TRACE_DEFINE(tp_block_null_init, "block_null_init");

static bool block_null_init(BdRegistry *reg, GError **errp)
{
    bd_trace_register(&tp_block_null_init);
    BD_TRACE(&tp_block_null_init, "plugin %s drivers null-co null-aio",
             bd_registry_plugin_name(reg));
    return bd_registry_add_block_driver(reg, &null_co_driver, errp) &&
           bd_registry_add_block_driver(reg, &null_aio_driver, errp);
}

BD_PLUGIN_DEFINE("block-null", BLOCKD_PLUGIN_VERSION,
                 "null block drivers (null-co, null-aio) for testing",
                 "GPL-2.0-or-later", block_null_schema, block_null_init);
