/*
 * block-raw: the raw format driver.  It shows its file node as it is, or
 * a window of it given by offset and size.  There is no probing: a raw
 * node is only ever created by name.
 *
 * Without a window it behaves as a filter (its child is FILTERED), with
 * one it is a data format (its child is DATA), as QEMU's raw driver.
 */
#include <errno.h>

#include <blockd/blockd.h>

#include "block-raw-schema.h"

#define SECTOR_SIZE 512

typedef struct RawState {
    BdChild *file;
    int64_t offset;
    int64_t size;
    bool has_size;
} RawState;

typedef struct RawLength {
    BdChild *file;
    int64_t len;
    bool done;
} RawLength;

static void raw_length_co(void *opaque)
{
    RawLength *l = opaque;

    l->len = bd_child_co_getlength(l->file);
    l->done = true;
}

/* The file node's length, from the main loop (open runs outside I/O). */
static int64_t file_length(BdNode *node, BdChild *file)
{
    RawLength l = { file, 0, false };

    if (bd_in_coroutine()) {
        return bd_child_co_getlength(file);
    }
    bd_aio_co_enter(bd_node_get_aio_context(node),
                    bd_coroutine_create(raw_length_co, &l));
    g_assert(l.done);   /* lengths are cached by the core: no wait */
    return l.len;
}

static bool raw_open(BdNode *node, JsonObject *opts, unsigned flags,
                     GError **errp)
{
    RawState *s = bd_node_get_opaque(node);
    int64_t real_size;

    s->offset = json_object_get_int_member_with_default(opts, "offset", 0);
    s->has_size = json_object_has_member(opts, "size");
    s->size = json_object_get_int_member_with_default(opts, "size", 0);
    if (s->offset < 0 || s->size < 0) {
        bd_error_setg(errp,
                      "Parameter '%s' expects a non-negative number below "
                      "2^64", s->offset < 0 ? "offset" : "size");
        return false;
    }
    s->file = bd_node_open_child(node, opts, "file",
                                 (s->offset || s->has_size ?
                                  BD_CHILD_DATA : BD_CHILD_FILTERED) |
                                 BD_CHILD_PRIMARY, false, errp);
    if (!s->file) {
        return false;
    }
    real_size = file_length(node, s->file);
    if (real_size < 0) {
        bd_error_setg(errp,
                      "Could not get image size: %s", g_strerror(-real_size));
        return false;
    }
    if (s->offset > real_size) {
        bd_error_setg(errp,
                      "Offset (%" G_GINT64_FORMAT ") cannot be greater than "
                      "size of the containing file (%" G_GINT64_FORMAT ")",
                      s->offset, real_size);
        return false;
    }
    if (s->has_size && real_size - s->offset < s->size) {
        /* QEMU's message has the double space too */
        bd_error_setg(errp,
                      "The sum of offset (%" G_GINT64_FORMAT ") and size (%"
                      G_GINT64_FORMAT ") has to be smaller or equal to the  "
                      "actual size of the containing file (%"
                      G_GINT64_FORMAT ")", s->offset, s->size, real_size);
        return false;
    }
    if (s->has_size && s->size % SECTOR_SIZE) {
        bd_error_setg(errp,
                      "Specified size is not multiple of %d", SECTOR_SIZE);
        return false;
    }
    return true;
}

static bool raw_refresh_limits(BdNode *node, BdBlockLimits *bl,
                               GError **errp)
{
    /* the file node's request layer emulates what its driver lacks */
    bl->supported_write_flags = BD_REQ_FUA;
    bl->supported_zero_flags = BD_REQ_FUA | BD_REQ_MAY_UNMAP |
                               BD_REQ_NO_FALLBACK;
    return true;
}

static int64_t raw_co_getlength(BdNode *node)
{
    RawState *s = bd_node_get_opaque(node);
    int64_t len;

    if (s->has_size) {
        return s->size;
    }
    len = bd_child_co_getlength(s->file);
    return len < 0 ? len : MAX(0, len - s->offset);
}

static int raw_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                         BdIOVector *qiov, BdRequestFlags flags)
{
    RawState *s = bd_node_get_opaque(node);

    return bd_child_co_preadv(s->file, s->offset + offset, bytes, qiov,
                              flags);
}

/* The bytes are the file's as they are: zero-copy reads pass through. */
static int64_t raw_co_pread_to_fd(BdNode *node, int64_t offset,
                                  int64_t bytes, int out_fd,
                                  BdRequestFlags flags)
{
    RawState *s = bd_node_get_opaque(node);

    return bd_child_co_pread_to_fd(s->file, s->offset + offset, bytes,
                                   out_fd, flags);
}

static int raw_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                          BdIOVector *qiov, BdRequestFlags flags)
{
    RawState *s = bd_node_get_opaque(node);

    return bd_child_co_pwritev(s->file, s->offset + offset, bytes, qiov,
                               flags);
}

static int raw_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                                BdRequestFlags flags)
{
    RawState *s = bd_node_get_opaque(node);

    return bd_child_co_pwrite_zeroes(s->file, s->offset + offset, bytes,
                                     flags);
}

static int raw_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    RawState *s = bd_node_get_opaque(node);

    return bd_child_co_pdiscard(s->file, s->offset + offset, bytes);
}

static int raw_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                               int64_t bytes, int64_t *pnum, int64_t *map,
                               BdNode **file)
{
    RawState *s = bd_node_get_opaque(node);

    *pnum = bytes;
    *map = s->offset + offset;
    *file = bd_child_get_node(s->file);
    return BD_BLOCK_RAW | BD_BLOCK_OFFSET_VALID;
}

static int raw_co_truncate(BdNode *node, int64_t offset, bool exact,
                           BdPreallocMode prealloc, BdRequestFlags flags,
                           GError **errp)
{
    RawState *s = bd_node_get_opaque(node);

    if (s->has_size) {
        bd_error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    return bd_child_co_truncate(s->file, s->offset + offset, exact, prealloc,
                                flags, errp);
}

/* The defaults, minus the write and resize the users do not need. */
static void raw_child_perm(BdNode *node, BdChild *child, BdChildRole role,
                           uint64_t perm, uint64_t shared, uint64_t *nperm,
                           uint64_t *nshared)
{
    bd_block_default_child_perm(node, child, role, perm, shared, nperm,
                                nshared);
    *nperm &= ~(uint64_t)(BD_PERM_WRITE | BD_PERM_RESIZE);
    *nperm |= perm & (BD_PERM_WRITE | BD_PERM_RESIZE);
}

/* The options that change what the node shows (QEMU's list). */
static const char *const raw_strong_options[] = { "offset", "size", NULL };

/* The file's image information is the node's. */
static int raw_get_info(BdNode *node, bool *is_dirty)
{
    BdChild *file = bd_node_get_file(node);

    return file ? bd_node_get_info(bd_child_get_node(file), is_dirty)
                : -ENOMEDIUM;
}

static const BdBlockDriver raw_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "raw",
    .description = "raw image: the file node's bytes as they are, or a "
                   "window of them",
    .instance_size = sizeof(RawState),
    .flags = BD_DRIVER_FORMAT | BD_DRIVER_THREAD_SAFE,
    .open = raw_open,
    .refresh_limits = raw_refresh_limits,
    .co_getlength = raw_co_getlength,
    .strong_options = raw_strong_options,
    .get_info = raw_get_info,
    .co_preadv = raw_co_preadv,
    .co_pread_to_fd = raw_co_pread_to_fd,
    .co_pwritev = raw_co_pwritev,
    .co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .co_pdiscard = raw_co_pdiscard,
    .co_block_status = raw_co_block_status,
    .co_truncate = raw_co_truncate,
    .child_perm = raw_child_perm,
};

static bool block_raw_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &raw_driver, errp);
}

BD_PLUGIN(.name = "block-raw",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the raw format driver",
          .license = "GPL-2.0-or-later",
          .schema = block_raw_schema,
          .init = block_raw_init);
