/*
 * block-preallocate: the preallocate filter driver, as QEMU 7.2's.  A
 * write beyond the file's end first zero-writes (BD_REQ_NO_FALLBACK:
 * fallocate on a file) from the file's end to
 * ALIGN_UP(end of write + prealloc-size, prealloc-align), so that a
 * growing image extends its file in large steps instead of at every
 * cluster; the node's length stays the end of the data written
 * (data_end), and at close the file is truncated back to it.
 *
 * The state (data_end, zero_start, file_end) is only kept while the
 * node's users hold both write and resize, which it then does not share
 * with others (QEMU's has_prealloc_perms): nobody else can change the
 * file's length meanwhile.  -EINVAL in them means "unknown".
 */
#include <errno.h>

#include <blockd/blockd.h>
#include <blockd/block-chain.h>

#include "block-preallocate-schema.h"

#define SECTOR_SIZE 512

typedef struct PreallocOpts {
    int64_t prealloc_size;
    int64_t prealloc_align;
    bool has[2];                /* given: [0] prealloc-align, [1] -size */
} PreallocOpts;

static const char *const opt_names[] = { "prealloc-align", "prealloc-size" };

typedef struct PreallocNode {
    BdChild *file;
    PreallocOpts opts;
    int64_t data_end;
    int64_t zero_start;
    int64_t file_end;
} PreallocNode;

static bool can_write_resize(uint64_t perm)
{
    return (perm & BD_PERM_WRITE) && (perm & BD_PERM_RESIZE);
}

/* Whether the node's users hold what keeps the state valid. */
static bool has_prealloc_perms(BdNode *node)
{
    uint64_t perm, shared;

    bd_node_get_perm(node, &perm, &shared);
    return can_write_resize(perm);
}

/* QEMU's preallocate_absorb_opts, with its messages. */
static bool absorb_opts(PreallocOpts *dest, JsonObject *opts, BdChild *file,
                        GError **errp)
{
    uint32_t file_align =
        bd_node_get_request_alignment(bd_child_get_node(file));
    const char *const *names = opt_names;
    int64_t defaults[] = { 1 << 20, 128 << 20 };
    int64_t values[2];

    for (int i = 0; i < 2; i++) {
        dest->has[i] = json_object_has_member(opts, names[i]);
        values[i] = json_object_get_int_member_with_default(opts, names[i],
                                                            defaults[i]);
        if (values[i] < 0) {
            bd_error_setg(errp, "Parameter '%s' expects a non-negative "
                          "number below 2^64", names[i]);
            return false;
        }
    }
    dest->prealloc_align = values[0];
    dest->prealloc_size = values[1];
    if (dest->prealloc_align % SECTOR_SIZE) {
        bd_error_setg(errp, "prealloc-align parameter of preallocate filter "
                      "is not aligned to %d", SECTOR_SIZE);
        return false;
    }
    if (dest->prealloc_align % file_align) {
        bd_error_setg(errp, "prealloc-align parameter of preallocate filter "
                      "is not aligned to underlying node request alignment "
                      "(%" G_GUINT32_FORMAT ")", file_align);
        return false;
    }
    return true;
}

static bool prealloc_open(BdNode *node, JsonObject *opts, unsigned flags,
                          GError **errp)
{
    PreallocNode *s = bd_node_get_opaque(node);

    s->file_end = s->zero_start = s->data_end = -EINVAL;
    s->file = bd_node_open_child(node, opts, "file",
                                 BD_CHILD_FILTERED | BD_CHILD_PRIMARY,
                                 false, errp);
    if (!s->file) {
        return false;
    }
    return absorb_opts(&s->opts, opts, s->file, errp);
}

static bool prealloc_reopen_prepare(BdNode *node, JsonObject *options,
                                    void **state, GError **errp)
{
    PreallocNode *s = bd_node_get_opaque(node);
    PreallocOpts *o;

    /* both options are mutable: once given, a reopen must give them */
    for (int i = 0; i < 2; i++) {
        if (s->opts.has[i] && !json_object_has_member(options,
                                                      opt_names[i])) {
            bd_error_setg(errp, "Option '%s' cannot be reset to its "
                          "default value", opt_names[i]);
            return false;
        }
    }
    o = g_new0(PreallocOpts, 1);
    if (!absorb_opts(o, options, s->file, errp)) {
        g_free(o);
        return false;
    }
    *state = o;
    return true;
}

static void prealloc_reopen_commit(BdNode *node, void *state)
{
    PreallocNode *s = bd_node_get_opaque(node);

    s->opts = *(PreallocOpts *)state;
    g_free(state);
}

static void prealloc_reopen_abort(BdNode *node, void *state)
{
    g_free(state);
}

/* The file ends where the data does: the preallocated tail goes away. */
static int drop_prealloc_co(PreallocNode *s)
{
    if (s->file_end < 0) {
        s->file_end = bd_child_co_getlength(s->file);
        if (s->file_end < 0) {
            return s->file_end;
        }
    }
    if (s->data_end < s->file_end) {
        int ret = bd_child_co_truncate(s->file, s->data_end, true,
                                       BD_PREALLOC_OFF, 0, NULL);

        s->file_end = ret < 0 ? ret : s->data_end;
        return ret;
    }
    return 0;
}

typedef struct DropPrealloc {
    PreallocNode *s;
    int ret;
} DropPrealloc;

static void drop_prealloc_entry(void *opaque)
{
    DropPrealloc *dp = opaque;

    dp->ret = drop_prealloc_co(dp->s);
}

/* From the main loop, in a coroutine of its own unless already in one. */
static int drop_prealloc(PreallocNode *s)
{
    DropPrealloc dp = { s, 0 };

    if (bd_in_coroutine()) {
        drop_prealloc_entry(&dp);
    } else {
        bd_block_job_run_co(drop_prealloc_entry, &dp);
    }
    return dp.ret;
}

/*
 * The users are about to drop write or resize: cut the file back now,
 * while the edge to it still has the resize permission (QEMU's
 * preallocate_check_perm; the format above usually goes away first).
 */
static bool prealloc_check_perm(BdNode *node, uint64_t perm, uint64_t shared,
                                GError **errp)
{
    PreallocNode *s = bd_node_get_opaque(node);

    if (s->data_end >= 0 && !can_write_resize(perm)) {
        bool had_len = s->file_end >= 0;
        int ret = drop_prealloc(s);

        if (ret < 0) {
            bd_error_setg(errp, had_len ? "Failed to drop preallocation"
                                        : "Failed to get file length");
            return false;
        }
    }
    return true;
}

/*
 * Without write and resize others may change the file (the child then
 * shares them): forget the state, and learn it again once they are back.
 */
static void prealloc_set_perm(BdNode *node, uint64_t perm, uint64_t shared)
{
    PreallocNode *s = bd_node_get_opaque(node);

    if (!can_write_resize(perm)) {
        s->data_end = s->file_end = s->zero_start = -EINVAL;
    }
}

static void prealloc_close(BdNode *node)
{
    PreallocNode *s = bd_node_get_opaque(node);

    if (s->data_end >= 0) {
        drop_prealloc(s);
    }
}

/*
 * QEMU's handle_write: true when the zero-write of @bytes at @offset
 * needs no more work (the range is already zero, within the
 * preallocated tail).
 */
bd_coroutine_fn
static bool handle_write(BdNode *node, int64_t offset, int64_t bytes,
                         bool want_merge_zero)
{
    PreallocNode *s = bd_node_get_opaque(node);
    int64_t end = offset + bytes;
    int64_t prealloc_start, prealloc_end;
    uint32_t file_align =
        bd_node_get_request_alignment(bd_child_get_node(s->file));
    int64_t prealloc_align = MAX(s->opts.prealloc_align, file_align);
    int ret;

    if (!has_prealloc_perms(node)) {
        s->data_end = s->file_end = s->zero_start = -EINVAL;
        return false;
    }
    if (s->data_end < 0) {
        s->data_end = bd_child_co_getlength(s->file);
        if (s->data_end < 0) {
            return false;
        }
        if (s->file_end < 0) {
            s->file_end = s->data_end;
        }
    }
    if (end <= s->data_end) {
        return false;
    }
    s->data_end = end;
    if (s->zero_start < 0 || !want_merge_zero) {
        s->zero_start = end;
    }
    if (s->file_end < 0) {
        s->file_end = bd_child_co_getlength(s->file);
        if (s->file_end < 0) {
            return false;
        }
    }
    if (end <= s->file_end) {
        return want_merge_zero && offset >= s->zero_start;
    }
    prealloc_start = want_merge_zero ? MIN(offset, s->file_end)
                                     : s->file_end;
    /* any multiple of 512, not only powers of two */
    prealloc_end = (end + s->opts.prealloc_size + prealloc_align - 1) /
                   prealloc_align * prealloc_align;
    ret = bd_child_co_pwrite_zeroes(s->file, prealloc_start,
                                    prealloc_end - prealloc_start,
                                    BD_REQ_NO_FALLBACK);
    if (ret < 0) {
        s->file_end = ret;
        return false;
    }
    s->file_end = prealloc_end;
    return want_merge_zero;
}

static int prealloc_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                               BdIOVector *qiov, BdRequestFlags flags)
{
    PreallocNode *s = bd_node_get_opaque(node);

    handle_write(node, offset, bytes, false);
    return bd_child_co_pwritev(s->file, offset, bytes, qiov, flags);
}

static int prealloc_co_pwrite_zeroes(BdNode *node, int64_t offset,
                                     int64_t bytes, BdRequestFlags flags)
{
    PreallocNode *s = bd_node_get_opaque(node);
    bool want_merge_zero = !(flags & ~BD_REQ_NO_FALLBACK);

    if (handle_write(node, offset, bytes, want_merge_zero)) {
        return 0;
    }
    return bd_child_co_pwrite_zeroes(s->file, offset, bytes, flags);
}

static int prealloc_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                              BdIOVector *qiov, BdRequestFlags flags)
{
    PreallocNode *s = bd_node_get_opaque(node);

    return bd_child_co_preadv(s->file, offset, bytes, qiov, flags);
}

static int prealloc_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    PreallocNode *s = bd_node_get_opaque(node);

    return bd_child_co_pdiscard(s->file, offset, bytes);
}

static int prealloc_co_truncate(BdNode *node, int64_t offset, bool exact,
                                BdPreallocMode prealloc,
                                BdRequestFlags flags, GError **errp)
{
    PreallocNode *s = bd_node_get_opaque(node);
    int ret;

    if (s->data_end >= 0 && offset > s->data_end) {
        if (s->file_end < 0) {
            s->file_end = bd_child_co_getlength(s->file);
            if (s->file_end < 0) {
                bd_error_setg(errp, "failed to get file length");
                return s->file_end;
            }
        }
        if (prealloc == BD_PREALLOC_FALLOC) {
            /* the filter's preallocation becomes the user's */
            if (offset <= s->file_end) {
                s->data_end = offset;
                return 0;
            }
        } else if (s->file_end > s->data_end) {
            /*
             * Drop the preallocated tail first: a shrink with
             * preallocation fails, and off/full must do what they say.
             */
            ret = bd_child_co_truncate(s->file, s->data_end, true,
                                       BD_PREALLOC_OFF, 0, errp);
            if (ret < 0) {
                s->file_end = ret;
                g_prefix_error(errp, "preallocate-filter: failed to drop "
                               "write-zero preallocation: ");
                return ret;
            }
            s->file_end = s->data_end;
        }
        s->data_end = offset;
    }
    ret = bd_child_co_truncate(s->file, offset, exact, prealloc, flags, errp);
    if (ret < 0) {
        s->file_end = s->zero_start = s->data_end = ret;
        return ret;
    }
    if (has_prealloc_perms(node)) {
        s->file_end = s->zero_start = s->data_end = offset;
    }
    return 0;
}

static int64_t prealloc_co_getlength(BdNode *node)
{
    PreallocNode *s = bd_node_get_opaque(node);
    int64_t ret;

    if (s->data_end >= 0) {
        return s->data_end;
    }
    ret = bd_child_co_getlength(s->file);
    if (has_prealloc_perms(node)) {
        s->file_end = s->zero_start = s->data_end = ret;
    }
    return ret;
}

/*
 * The defaults; while the users write and resize, the file's writes and
 * resizes are not shared, to keep the state valid (QEMU's).
 */
static void prealloc_child_perm(BdNode *node, BdChild *child,
                                BdChildRole role, uint64_t perm,
                                uint64_t shared, uint64_t *nperm,
                                uint64_t *nshared)
{
    bd_block_default_child_perm(node, child, role, perm, shared, nperm,
                                nshared);
    if (can_write_resize(perm)) {
        *nperm |= BD_PERM_WRITE | BD_PERM_RESIZE;
        *nshared &= ~(uint64_t)(BD_PERM_WRITE | BD_PERM_RESIZE);
    }
}

static int prealloc_get_info(BdNode *node, bool *is_dirty)
{
    BdChild *file = bd_node_get_file(node);

    return file ? bd_node_get_info(bd_child_get_node(file), is_dirty)
                : -ENOMEDIUM;
}

static const BdBlockDriver prealloc_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "preallocate",
    .description = "preallocate filter: a growing file is extended in "
                   "large steps, truncated back at close",
    .instance_size = sizeof(PreallocNode),
    .flags = BD_DRIVER_FILTER,
    .open = prealloc_open,
    .close = prealloc_close,
    .reopen_prepare = prealloc_reopen_prepare,
    .reopen_commit = prealloc_reopen_commit,
    .reopen_abort = prealloc_reopen_abort,
    .co_getlength = prealloc_co_getlength,
    .get_info = prealloc_get_info,
    .child_perm = prealloc_child_perm,
    .check_perm = prealloc_check_perm,
    .set_perm = prealloc_set_perm,
    .co_preadv = prealloc_co_preadv,
    .co_pwritev = prealloc_co_pwritev,
    .co_pwrite_zeroes = prealloc_co_pwrite_zeroes,
    .co_pdiscard = prealloc_co_pdiscard,
    .co_truncate = prealloc_co_truncate,
};

static bool block_preallocate_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &prealloc_driver, errp);
}

BD_PLUGIN(.name = "block-preallocate",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the preallocate filter driver",
          .license = "GPL-2.0-or-later",
          .schema = block_preallocate_schema,
          .init = block_preallocate_init);
