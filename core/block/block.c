/*
 * Start-up of the block layer.
 */
#include "aio/aio-context.h"
#include "block/block-qmp.h"
#include "block/block.h"
#include "block/dirty-bitmap.h"

void bd_block_init(void)
{
    bd_aio_main_context();
    /* in this order, query-commands lists them as qsd does */
    bd_block_qmp_init();
    bd_block_query_init();
    bd_dirty_bitmap_qmp_init();
}
