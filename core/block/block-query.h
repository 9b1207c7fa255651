/*
 * The block layer's query and management commands beyond blockdev-add/
 * -del: node descriptions (block-query*.c), block_resize (block-resize.c),
 * blockdev-reopen (block-reopen.c) and the write threshold
 * (block-threshold.c).
 *
 * Main loop unless said otherwise.
 */
#ifndef BLOCKD_CORE_BLOCK_QUERY_H
#define BLOCKD_CORE_BLOCK_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "block/block-int.h"

/*
 * Register query-named-block-nodes, query-block, query-blockstats,
 * x-debug-query-block-graph, block_resize, blockdev-reopen and
 * block-set-write-threshold.  Called by bd_block_init().
 */
void bd_block_query_init(void);

/*
 * The file name QEMU 7.2 shows for @node (BlockDeviceInfo's "file",
 * ImageInfo's "filename"): the protocol's own name when the node can be
 * reopened from it alone ("null-co://", a file's path, or a format's
 * protocol child's name), otherwise "json:" followed by the options that
 * matter.  Caller frees.
 */
char *bd_node_filename(BdNode *node);

/* @node's BlockDeviceInfo; @flat leaves out backing images.  New ref. */
JsonObject *bd_node_device_info(BdNode *node, bool flat);

/*
 * Arm @node's write threshold at @threshold bytes (0 disarms).  The first
 * write or zero-write reaching beyond it emits BLOCK_WRITE_THRESHOLD and
 * disarms it.
 */
void bd_node_set_write_threshold(BdNode *node, uint64_t threshold);

/*
 * The request layer's hook: called for every write and zero-write of
 * @node (whose threshold is set) with the range it covers, in the node's
 * context.  Emits the event and disarms once the range ends beyond the
 * threshold.
 */
void bd_node_write_threshold_check(BdNode *node, int64_t offset,
                                   int64_t bytes);

/* The QMP handlers, also called directly by unit tests. */
bool bd_qmp_block_resize(JsonObject *args, JsonNode **ret, GError **errp);
bool bd_qmp_blockdev_reopen(JsonObject *args, JsonNode **ret,
                            GError **errp);
bool bd_qmp_block_set_write_threshold(JsonObject *args, JsonNode **ret,
                                      GError **errp);

#endif /* BLOCKD_CORE_BLOCK_QUERY_H */
