/*
 * The "stream" job: what QEMU 7.2's block/stream.c does, step for step.
 * @run copies, chunk by chunk, what the layers between the top and the
 * base define and the top does not (copy-on-read into the top, so a
 * write from an export meanwhile is never overwritten); @prepare makes
 * the base the top's backing node and records its name in the image.
 */
#include <errno.h>
#include <limits.h>

#include "job-stream.h"

/* QEMU's STREAM_CHUNK */
#define STREAM_CHUNK (512 * 1024)

static bd_coroutine_fn int stream_run(BdJob *job, GError **errp)
{
    StreamJob *s = bd_job_opaque(job);
    int64_t len, offset, n = 0;
    int error = 0;

    if (!bd_node_get_backing(s->top) || s->base_depth <= 2) {
        /* the base is the top's backing already: nothing to stream */
        return 0;
    }
    len = bd_blk_co_getlength(s->blk);
    if (len < 0) {
        return len;
    }
    bd_job_progress_set_remaining(job, len);
    for (offset = 0; offset < len; offset += n) {
        bool copy = false;
        int ret;

        /* also a pause point when there is no limit: drains see it */
        bd_job_ratelimit_sleep(job);
        if (bd_job_is_cancelled(job)) {
            break;
        }
        ret = bd_blk_co_allocation_depth(s->blk, offset, STREAM_CHUNK, &n);
        if (ret >= 0) {
            if (n <= 0) {
                /* past the end of every layer below: nothing to copy */
                n = len - offset;
            }
            n = MIN(n, len - offset);
            copy = ret >= 2 && ret < s->base_depth;
            if (copy) {
                ret = bd_blk_co_copy_on_read(s->blk, offset, n);
            }
        }
        if (ret < 0) {
            BdJobErrorAction action =
                bd_job_error_action(job, s->on_error, true, -ret);

            if (action == BD_JOB_ERROR_ACTION_STOP) {
                /* paused now: the same chunk again after job-resume */
                n = 0;
                continue;
            }
            if (error == 0) {
                error = ret;
            }
            if (action == BD_JOB_ERROR_ACTION_REPORT) {
                break;
            }
        }
        bd_job_progress_update(job, n);
        if (copy) {
            bd_job_ratelimit_processed(job, n);
        }
    }
    /* an error that was ignored still keeps the backing chain */
    return error;
}

static int stream_prepare(BdJob *job, GError **errp)
{
    StreamJob *s = bd_job_opaque(job);
    g_autofree char *base_name = NULL;
    const char *base_fmt = NULL;

    if (!bd_node_get_backing(s->top)) {
        return 0;
    }
    if (s->base) {
        base_name = s->backing_file ? g_strdup(s->backing_file)
                                    : bd_node_get_filename(s->base);
        base_fmt = bd_node_get_driver_name(s->base);
    }
    if (!bd_node_set_backing(s->top, s->base, errp)) {
        return -EPERM;
    }
    if (!bd_node_change_backing_file(s->top, base_name, base_fmt, errp)) {
        return -EPERM;
    }
    return 0;
}

/* Let the dropped layers go (and the top) whatever the outcome. */
static void stream_clean(BdJob *job)
{
    StreamJob *s = bd_job_opaque(job);

    g_ptr_array_set_size(s->held, 0);
    g_clear_pointer(&s->blk, bd_block_job_blk_free);
}

void stream_job_free(void *opaque)
{
    StreamJob *s = opaque;

    if (s->held) {
        g_ptr_array_unref(s->held);
    }
    bd_block_job_blk_free(s->blk);
    g_free(s->backing_file);
    g_free(s);
}

const BdJobType stream_job_type = {
    .struct_size = sizeof(BdJobType),
    .name = "stream",
    .description = "copy a backing chain into its top (block-stream)",
    .block_job = true,
    .run = stream_run,
    .prepare = stream_prepare,
    .clean = stream_clean,
    .free = stream_job_free,
};
