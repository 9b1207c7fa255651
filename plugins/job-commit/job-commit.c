/*
 * The "commit" job of an intermediate layer: what QEMU 7.2's
 * block/commit.c does, step for step.  @run copies what the layers from
 * the top down to just above the base define into the base (growing the
 * base first if it is shorter); @prepare makes the base the overlay's
 * backing node and records its name in the overlay's image.
 */
#include <errno.h>
#include <stdlib.h>

#include "job-commit.h"

/* QEMU's COMMIT_BUFFER_SIZE */
#define COMMIT_BUFFER_SIZE (512 * 1024)

static bd_coroutine_fn int commit_run(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);
    int64_t len, base_len, offset, n = 0;
    void *buf;
    int ret = 0;

    if (s->active) {
        return commit_active_run(job, errp);
    }
    len = bd_blk_co_getlength(s->top_blk);
    if (len < 0) {
        return len;
    }
    bd_job_progress_set_remaining(job, len);
    base_len = bd_blk_co_getlength(s->base_blk);
    if (base_len < 0) {
        return base_len;
    }
    if (base_len < len) {
        ret = bd_blk_co_truncate(s->base_blk, len, false, BD_PREALLOC_OFF,
                                 0, errp);
        if (ret < 0) {
            return ret;
        }
    }
    buf = bd_node_try_blockalign(s->top, COMMIT_BUFFER_SIZE);
    if (!buf) {
        return -ENOMEM;
    }
    for (offset = 0; offset < len; offset += n) {
        bool copy, error_in_source = true;

        bd_job_ratelimit_sleep(job);
        if (bd_job_is_cancelled(job)) {
            break;
        }
        ret = bd_blk_co_allocation_depth(s->top_blk, offset,
                                         COMMIT_BUFFER_SIZE, &n);
        if (ret >= 0 && n <= 0) {
            n = len - offset;
        }
        n = MIN(n, len - offset);
        copy = ret >= 1 && ret < s->base_depth;
        if (copy) {
            ret = bd_blk_co_pread(s->top_blk, offset, n, buf, 0);
            if (ret >= 0) {
                ret = bd_blk_co_pwrite(s->base_blk, offset, n, buf, 0);
                if (ret < 0) {
                    error_in_source = false;
                }
            }
        }
        if (ret < 0) {
            BdJobErrorAction action =
                bd_job_error_action(job, s->on_error, error_in_source, -ret);

            if (action == BD_JOB_ERROR_ACTION_REPORT) {
                free(buf);
                return ret;
            }
            /* stop (paused now) or ignore: the same chunk again */
            n = 0;
            continue;
        }
        bd_job_progress_update(job, n);
        if (copy) {
            bd_job_ratelimit_processed(job, n);
        }
    }
    free(buf);
    return 0;
}

static int commit_prepare(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);
    g_autofree char *name = NULL;

    if (s->active) {
        return commit_active_prepare(job, errp);
    }
    name = s->backing_file ? g_strdup(s->backing_file)
                           : bd_node_get_filename(s->base);

    /* the base's writer goes first, as QEMU's commit_prepare() */
    g_clear_pointer(&s->base_blk, bd_block_job_blk_free);
    if (!bd_node_change_backing_file(s->overlay, name,
                                     bd_node_get_driver_name(s->base),
                                     errp)) {
        return -EPERM;
    }
    if (!bd_node_set_backing(s->overlay, s->base, errp)) {
        return -EPERM;
    }
    return 0;
}

static void commit_clean(BdJob *job)
{
    CommitJob *s = bd_job_opaque(job);

    g_ptr_array_set_size(s->held, 0);
    g_clear_pointer(&s->base_blk, bd_block_job_blk_free);
    g_clear_pointer(&s->top_blk, bd_block_job_blk_free);
    g_clear_pointer(&s->dirty, bd_block_job_bitmap_free);
}

static void commit_complete(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);

    if (!s->active) {
        /* as QEMU: only the active commit (a mirror) can be completed */
        bd_error_setg(errp, "The active block job '%s' cannot be completed",
                      bd_job_id(job));
        return;
    }
    commit_active_complete(job, errp);
}

static bool commit_cancel(BdJob *job, bool force)
{
    CommitJob *s = bd_job_opaque(job);

    return s->active ? commit_active_cancel(job, force) : true;
}

void commit_job_free(void *opaque)
{
    CommitJob *s = opaque;

    if (s->held) {
        g_ptr_array_unref(s->held);
    }
    bd_block_job_blk_free(s->base_blk);
    bd_block_job_blk_free(s->top_blk);
    bd_block_job_bitmap_free(s->dirty);
    g_free(s->backing_file);
    g_free(s);
}

const BdJobType commit_job_type = {
    .struct_size = sizeof(BdJobType),
    .name = "commit",
    .description = "merge layers of a backing chain down (block-commit)",
    .block_job = true,
    .run = commit_run,
    .prepare = commit_prepare,
    .clean = commit_clean,
    .free = commit_job_free,
    .complete = commit_complete,
    .cancel = commit_cancel,
};
