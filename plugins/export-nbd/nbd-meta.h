/*
 * export-nbd: the "qemu:dirty-bitmap:NAME" metadata contexts: which of
 * an export's bitmaps a LIST/SET_META_CONTEXT query names, and their
 * NBD_CMD_BLOCK_STATUS extents.
 */
#ifndef NBD_META_H
#define NBD_META_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/dirty-bitmap.h>

#include "nbd-int.h"
#include "nbd-proto.h"

#define NBD_META_DIRTY_BITMAP_PREFIX "qemu:dirty-bitmap:"
/* The context id of an export's bitmap i is this plus i (QEMU's ids). */
#define NBD_META_ID_DIRTY_BITMAP 2
/* The block status flag of a dirty extent. */
#define NBD_STATE_DIRTY 1u

/* A connection's choice among its export's bitmaps. */
typedef struct NbdMetaBitmaps {
    bool *sel;          /* one per bitmap of the export, NULL if none */
    unsigned nr;        /* the export's number of bitmaps at the time */
    unsigned count;     /* how many are selected */
} NbdMetaBitmaps;

/* Forget the selection. */
void nbd_meta_bitmaps_clear(NbdMetaBitmaps *mb);

/*
 * Select the bitmaps of @e that the queries of @req name, as QEMU 7.2
 * does: "qemu:dirty-bitmap:NAME" selects one; for LIST (@list true) no
 * query at all, "qemu:" and "qemu:dirty-bitmap:" select every bitmap.
 * @mb is overwritten (clear it first if it held a selection).
 */
void nbd_meta_select_bitmaps(const NbdExport *e, const NbdMetaRequest *req,
                             bool list, NbdMetaBitmaps *mb);

/* The context name of @e's bitmap @i (caller frees). */
char *nbd_meta_bitmap_context(const NbdExport *e, unsigned i);

#endif /* NBD_META_H */
