/*
 * Start-up of the block layer.
 */
#include "aio/aio-context.h"
#include "aio/main-loop.h"
#include "block/block-int.h"
#include "block/block-qmp.h"
#include "block/block.h"
#include "block/dirty-bitmap.h"

/*
 * At exit the nodes blockdev-add made are closed, newest first, as QEMU
 * closes all block devices: a format driver writes back what it caches
 * (qcow2's L2 and refcount tables) and marks its image clean.  The
 * exports are gone by then (their notifier was added later, so it runs
 * first).
 */
static void block_close_all(void *opaque)
{
    GPtrArray *all = bd_node_all();

    for (guint i = all->len; i-- > 0;) {
        BdNode *node;

        if (i >= all->len) {
            continue;
        }
        node = all->pdata[i];
        if (node->monitor_owned && node->refcnt == 1) {
            node->monitor_owned = false;
            bd_node_unref(node);
        }
    }
}

void bd_block_init(void)
{
    bd_shutdown_add_notifier(block_close_all, NULL);
    bd_aio_main_context();
    /* in this order, query-commands lists them as qsd does */
    bd_block_qmp_init();
    bd_block_query_init();
    bd_dirty_bitmap_qmp_init();
    bd_snapshot_internal_qmp_init();
}
