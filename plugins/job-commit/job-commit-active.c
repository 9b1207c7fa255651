/*
 * The "commit" job of the active layer: what QEMU 7.2 does with a mirror
 * from the top into the base (commit_active_start()).  A dirty bitmap on
 * the top records what is to be copied: first every range allocated
 * above the base, then every write that comes meanwhile.  Once nothing
 * is dirty the job is READY (BLOCK_JOB_READY) and keeps the base in
 * sync; job-complete makes it finish, and @prepare copies what the last
 * moments dirtied inside a drained section and puts the base in the
 * top's place for every user of the top (the pivot).  A soft cancel of
 * a READY job (block-job-cancel) ends it without the pivot.
 */
#include <errno.h>
#include <stdlib.h>

#include "job-commit.h"

/* one copy step at most (QEMU's mirror buffer default is 1 MiB) */
#define ACTIVE_CHUNK (512 * 1024)

/* QEMU's BLOCK_JOB_SLICE_TIME: a READY job looks again this often */
#define READY_POLL_NS 100000000ULL

/* Mark what the layers above the base define (mirror_dirty_init()). */
static bd_coroutine_fn int dirty_init(BdJob *job, CommitJob *s, int64_t len)
{
    int64_t offset, n = 0;

    for (offset = 0; offset < len; offset += n) {
        int ret = bd_blk_co_allocation_depth(s->top_blk, offset,
                                             len - offset, &n);

        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        if (ret >= 1 && ret < s->base_depth) {
            bd_block_job_bitmap_set(s->dirty, offset, n);
        }
        bd_job_pause_point(job);
        if (bd_job_is_cancelled(job)) {
            return 0;
        }
    }
    return 0;
}

/*
 * Copy the first dirty extent at or after *@cursor (at most
 * ACTIVE_CHUNK, whole granules): 0 with *@copied bytes done (0: nothing
 * dirty), or a negative errno with *@is_read telling which side failed
 * (the range is dirty again then).
 */
static bd_coroutine_fn int copy_step(CommitJob *s, int64_t len, void *buf,
                                     int64_t *cursor, int64_t *copied,
                                     bool *is_read)
{
    int64_t off = *cursor, n = 0;
    bool dirty = false;
    int ret;

    *copied = 0;
    for (int pass = 0; pass < 2; pass++) {
        while (off < len) {
            n = bd_dirty_bitmap_extent(s->dirty, off, len - off, &dirty);
            if (n <= 0 || dirty) {
                break;
            }
            off += n;
        }
        if (dirty && off < len) {
            break;
        }
        /* wrap around once, as the mirror does */
        off = 0;
        dirty = false;
    }
    if (!dirty) {
        return 0;
    }
    n = MIN(MIN(n, (int64_t)ACTIVE_CHUNK), len - off);
    bd_block_job_bitmap_reset(s->dirty, off, n);
    *is_read = true;
    ret = bd_blk_co_pread(s->top_blk, off, n, buf, 0);
    if (ret >= 0) {
        *is_read = false;
        ret = bd_blk_co_pwrite(s->base_blk, off, n, buf, 0);
    }
    if (ret < 0) {
        bd_block_job_bitmap_set(s->dirty, off, n);
        return ret;
    }
    *cursor = off + n;
    *copied = n;
    return 0;
}

bd_coroutine_fn int commit_active_run(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);
    int64_t len, base_len, cursor = 0;
    void *buf;
    int ret;

    len = bd_blk_co_getlength(s->top_blk);
    if (len < 0) {
        return len;
    }
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
    ret = dirty_init(job, s, len);
    if (ret < 0) {
        return ret;
    }
    buf = bd_node_try_blockalign(s->top, ACTIVE_CHUNK);
    if (!buf) {
        return -ENOMEM;
    }
    ret = 0;
    for (;;) {
        uint64_t cnt;
        int64_t copied = 0;
        bool is_read = true;

        bd_job_progress_set_remaining(job,
                                      bd_block_job_bitmap_count(s->dirty));
        if (bd_job_is_cancelled(job)) {
            break;
        }
        /* a soft cancel of a READY job: end without the pivot */
        if (bd_job_cancel_requested(job) && bd_job_is_ready(job)) {
            break;
        }
        cnt = bd_block_job_bitmap_count(s->dirty);
        if (cnt > 0) {
            bd_job_ratelimit_sleep(job);
            if (bd_job_is_cancelled(job)) {
                break;
            }
            ret = copy_step(s, len, buf, &cursor, &copied, &is_read);
            if (ret < 0) {
                BdJobErrorAction action =
                    bd_job_error_action(job, s->on_error, is_read, -ret);

                if (action == BD_JOB_ERROR_ACTION_REPORT) {
                    break;
                }
                ret = 0;
                continue;
            }
            bd_job_progress_update(job, copied);
            bd_job_ratelimit_processed(job, copied);
            continue;
        }
        if (!bd_job_is_ready(job)) {
            bd_job_transition_to_ready(job);
        }
        if (s->should_complete) {
            /* in sync: @prepare copies what comes until it drains */
            s->synced = true;
            break;
        }
        bd_job_sleep_ns(job, READY_POLL_NS);
    }
    free(buf);
    return ret;
}

typedef struct FinalCopy {
    CommitJob *s;
    int ret;
} FinalCopy;

static bd_coroutine_fn void final_copy_co(void *opaque)
{
    FinalCopy *fc = opaque;
    CommitJob *s = fc->s;
    int64_t len = bd_blk_co_getlength(s->top_blk), cursor = 0, copied;
    void *buf = bd_node_try_blockalign(s->top, ACTIVE_CHUNK);
    bool is_read;

    if (!buf) {
        fc->ret = -ENOMEM;
        return;
    }
    fc->ret = len < 0 ? (int)len : 0;
    while (fc->ret == 0 && bd_block_job_bitmap_count(s->dirty) > 0) {
        fc->ret = copy_step(s, len, buf, &cursor, &copied, &is_read);
    }
    if (fc->ret == 0) {
        fc->ret = bd_blk_co_flush(s->base_blk);
    }
    free(buf);
}

int commit_active_prepare(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);
    FinalCopy fc = { s, 0 };
    bool ok;

    if (!s->synced) {
        /* soft-cancelled: the base stays as it is, no pivot */
        return 0;
    }
    /*
     * Nobody writes the top from here on: what came since @run ended is
     * copied, then the base takes the top's place.
     */
    bd_block_job_drained_begin(s->top);
    bd_block_job_run_co(final_copy_co, &fc);
    if (fc.ret < 0) {
        bd_block_job_drained_end(s->top);
        bd_error_setg(errp, "%s", g_strerror(-fc.ret));
        return fc.ret;
    }
    ok = bd_node_replace(s->top, s->base, errp);
    bd_block_job_drained_end(s->top);
    return ok ? 0 : -EPERM;
}

void commit_active_complete(BdJob *job, GError **errp)
{
    CommitJob *s = bd_job_opaque(job);

    s->should_complete = true;
    bd_job_enter(job);
}

/* QEMU's commit_active_cancel(): soft only when READY. */
bool commit_active_cancel(BdJob *job, bool force)
{
    return force || !bd_job_is_ready(job);
}
