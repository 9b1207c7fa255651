/*
 * The block layer's QMP commands: blockdev-add/-del and
 * x-blockdev-set-iothread (block-qmp.c), the queries (block-query-qmp.c),
 * and the handlers of block_resize (block-resize.c), blockdev-reopen
 * (block-reopen.c) and block-set-write-threshold (block-threshold.c),
 * which block-query-qmp.c registers.  Private to block/.
 *
 * Main loop.
 */
#ifndef BLOCKD_CORE_BLOCK_QMP_H
#define BLOCKD_CORE_BLOCK_QMP_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "block/block-int.h"

/*
 * Register blockdev-add, blockdev-del, x-blockdev-set-iothread.  Called
 * by bd_block_init().
 */
void bd_block_qmp_init(void);

/*
 * Register query-named-block-nodes, query-block, query-blockstats,
 * x-debug-query-block-graph, block_resize, blockdev-reopen and
 * block-set-write-threshold.  Called by bd_block_init().
 */
void bd_block_query_init(void);

/*
 * Register blockdev-snapshot-internal-sync and
 * blockdev-snapshot-delete-internal-sync (snapshot-internal-qmp.c).
 */
void bd_snapshot_internal_qmp_init(void);

/* blockdev-snapshot, blockdev-snapshot-sync, change-backing-file
 * (snapshot-external-qmp.c) */
void bd_snapshot_external_qmp_init(void);

/*
 * A blockdev-snapshot or blockdev-snapshot-sync (@type) with its
 * arguments @data as a transaction's action: prepare appends the
 * overlay; commit makes the old node read-only; abort puts the old node
 * back.  Main loop.
 */
typedef struct BdSnapshotState BdSnapshotState;
BdSnapshotState *bd_snapshot_prepare(const char *type, JsonObject *data,
                                     GError **errp);
void bd_snapshot_commit(BdSnapshotState *st);
void bd_snapshot_abort(BdSnapshotState *st);

/* transaction */
void bd_block_transaction_qmp_init(void);

/* The QMP handlers, also called directly by unit tests. */
bool bd_qmp_x_blockdev_set_iothread(JsonObject *args, JsonNode **ret,
                                    GError **errp);
bool bd_qmp_block_resize(JsonObject *args, JsonNode **ret, GError **errp);
bool bd_qmp_blockdev_reopen(JsonObject *args, JsonNode **ret,
                            GError **errp);
bool bd_qmp_block_set_write_threshold(JsonObject *args, JsonNode **ret,
                                      GError **errp);

#endif /* BLOCKD_CORE_BLOCK_QMP_H */
