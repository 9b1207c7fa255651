/*
 * The block layer as the rest of the core sees it: start-up, and the
 * BlockBackend handles exports take on nodes.  What plugins see is in
 * <blockd/block.h> and <blockd/block-backend.h>; the graph's internals
 * are block-int.h, private to block/.
 *
 * Main loop.
 */
#ifndef BLOCKD_CORE_BLOCK_BLOCK_H
#define BLOCKD_CORE_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/block-backend.h>
#include <blockd/block.h>

#include "aio/aio-context.h"

/*
 * Create the main thread's AioContext and register the block layer's QMP
 * commands.  Main thread, once, before any node is opened.
 */
void bd_block_init(void);

/*
 * Open a node from validated BlockdevOptions.  @top: a blockdev-add root
 * (node-name required, owned by the monitor).  On failure everything
 * created is gone again.  Main loop.
 */
BdNode *bd_node_open(JsonObject *options, bool top, GError **errp);

/*
 * bd_blk_new(), bd_blk_insert(), bd_blk_remove() and bd_blk_unref() are
 * public: <blockd/block-backend.h>.
 */
BdNode *bd_blk_node(BdBlockBackend *blk);
const char *bd_blk_name(BdBlockBackend *blk);
bool bd_blk_set_perm(BdBlockBackend *blk, uint64_t perm, uint64_t shared,
                     GError **errp);

/* The I/O functions are public: <blockd/block-backend.h>. */

/*
 * Make every write through @blk FUA (an export's writethrough=on, QEMU's
 * disabled write cache).  Main loop.
 */
void bd_blk_set_write_through(BdBlockBackend *blk, bool on);

/*
 * Move @node, with every node connected to it that is not in @ctx yet, into
 * @ctx: drained, with the drivers' detach_aio_context/attach_aio_context.
 * Refused (nothing moves) when a BlockBackend other than @allowed_blk uses
 * one of them: the caller of a move that includes @allowed_blk moves that
 * backend's user itself.  Main loop.
 */
bool bd_node_set_aio_context(BdNode *node, BdAioContext *ctx,
                             BdBlockBackend *allowed_blk, GError **errp);

#endif /* BLOCKD_CORE_BLOCK_BLOCK_H */
