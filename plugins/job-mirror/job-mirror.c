/*
 * The "mirror" job: what QEMU 7.2's block/mirror.c does for
 * blockdev-mirror.  A dirty bitmap on the source records what is to be
 * copied: first what the sync mode asks for (full: everything; top:
 * what the source defines above its backing node; none: nothing), then
 * every write that comes meanwhile (the bitmap is on the source node, so
 * an export's writes are recorded too).  Once nothing is dirty the job
 * is READY (BLOCK_JOB_READY) and keeps the target in sync; job-complete
 * makes it finish, and @prepare copies what the last moments dirtied
 * inside a drained section and puts the target in the source's place
 * for every user of the source (the pivot).  A soft cancel of a READY
 * job (block-job-cancel) ends it without the pivot, the target being a
 * consistent copy of the source at that moment.
 *
 * Ranges that read as zeroes are written as zero-writes (which may
 * unmap, as QEMU's mirror with unmap=true) rather than copied.
 */
#include <errno.h>
#include <stdlib.h>

#include "job-mirror.h"

/* QEMU's BLOCK_JOB_SLICE_TIME: a READY job looks again this often */
#define READY_POLL_NS 100000000ULL

/* Mark what the sync mode copies (mirror_dirty_init()). */
static bd_coroutine_fn int dirty_init(BdJob *job, MirrorJob *s, int64_t len)
{
    int64_t offset, n = 0;

    if (s->sync == MIRROR_SYNC_NONE) {
        return 0;
    }
    if (s->sync == MIRROR_SYNC_FULL) {
        bd_block_job_bitmap_set(s->dirty, 0, len);
        return 0;
    }
    /* top: what the source itself defines */
    for (offset = 0; offset < len; offset += n) {
        int ret = bd_blk_co_allocation_depth(s->source_blk, offset,
                                             len - offset, &n);

        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        if (ret == 1) {
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
 * Copy @n bytes at @off, piece by piece as the source's block status
 * splits them (QEMU's mirror_iteration()): a piece that reads as zeroes
 * becomes a zero-write (unmapping), the rest is read and written.  0 or
 * a negative errno with *@is_read telling which side failed.
 */
static bd_coroutine_fn int copy_range(MirrorJob *s, int64_t off, int64_t n,
                                      void *buf, bool *is_read)
{
    int64_t end = off + n;

    while (off < end) {
        int64_t pnum = 0;
        int ret;

        *is_read = true;
        ret = bd_blk_co_block_status(s->source_blk, true, off, end - off,
                                     &pnum, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (pnum <= 0) {
            return -EIO;
        }
        pnum = MIN(pnum, end - off);
        if (ret & BD_BLOCK_ZERO) {
            *is_read = false;
            ret = bd_blk_co_pwrite_zeroes(s->target_blk, off, pnum,
                                          BD_REQ_MAY_UNMAP);
        } else {
            ret = bd_blk_co_pread(s->source_blk, off, pnum, buf, 0);
            if (ret >= 0) {
                *is_read = false;
                ret = bd_blk_co_pwrite(s->target_blk, off, pnum, buf, 0);
            }
        }
        if (ret < 0) {
            return ret;
        }
        off += pnum;
    }
    return 0;
}

/*
 * Copy the first dirty extent at or after *@cursor (at most buf-size
 * bytes, whole granules): 0 with *@copied bytes done (0: nothing dirty),
 * or a negative errno with *@is_read telling which side failed (the
 * range is dirty again then).
 */
static bd_coroutine_fn int copy_step(MirrorJob *s, int64_t len, void *buf,
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
    n = MIN(MIN(n, s->buf_size), len - off);
    /*
     * Reset before reading: a write that lands while the copy is under
     * way dirties the range again and it is copied once more.
     */
    bd_block_job_bitmap_reset(s->dirty, off, n);
    ret = copy_range(s, off, n, buf, is_read);
    if (ret < 0) {
        bd_block_job_bitmap_set(s->dirty, off, n);
        return ret;
    }
    *cursor = off + n;
    *copied = n;
    return 0;
}

static bd_coroutine_fn int mirror_run(BdJob *job, GError **errp)
{
    MirrorJob *s = bd_job_opaque(job);
    int64_t len, target_len, cursor = 0;
    void *buf;
    int ret;

    len = bd_blk_co_getlength(s->source_blk);
    if (len < 0) {
        return len;
    }
    target_len = bd_blk_co_getlength(s->target_blk);
    if (target_len < 0) {
        return target_len;
    }
    /* QEMU's mirror_run(): neither side is resized */
    if (target_len != len) {
        bd_error_setg(errp, "Source and target image have different sizes");
        return -EINVAL;
    }
    ret = dirty_init(job, s, len);
    if (ret < 0) {
        return ret;
    }
    buf = bd_node_try_blockalign(s->source, s->buf_size);
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
                BdJobErrorAction action = bd_job_error_action(
                    job, is_read ? s->on_source_error : s->on_target_error,
                    is_read, -ret);

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
            /* QEMU flushes the target before it says READY */
            ret = bd_blk_co_flush(s->target_blk);
            if (ret < 0) {
                BdJobErrorAction action = bd_job_error_action(
                    job, s->on_target_error, false, -ret);

                if (action == BD_JOB_ERROR_ACTION_REPORT) {
                    break;
                }
                ret = 0;
                continue;
            }
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
    MirrorJob *s;
    int ret;
} FinalCopy;

static bd_coroutine_fn void final_copy_co(void *opaque)
{
    FinalCopy *fc = opaque;
    MirrorJob *s = fc->s;
    int64_t len = bd_blk_co_getlength(s->source_blk), cursor = 0, copied;
    void *buf = bd_node_try_blockalign(s->source, s->buf_size);
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
        fc->ret = bd_blk_co_flush(s->target_blk);
    }
    free(buf);
}

static int mirror_prepare(BdJob *job, GError **errp)
{
    MirrorJob *s = bd_job_opaque(job);
    FinalCopy fc = { s, 0 };
    bool ok;

    if (!s->synced) {
        /* soft-cancelled: the source stays where it is, no pivot */
        return 0;
    }
    /*
     * Nobody writes the source from here on: what came since @run ended
     * is copied, then the target takes the source's place.
     */
    bd_block_job_drained_begin(s->source);
    bd_block_job_run_co(final_copy_co, &fc);
    if (fc.ret < 0) {
        bd_block_job_drained_end(s->source);
        bd_error_setg(errp, "%s", g_strerror(-fc.ret));
        return fc.ret;
    }
    /*
     * The job writes no more: its target handle stops refusing others
     * what the source's users take (QEMU's mirror_exit_common() does
     * the same before bdrv_replace_node()).
     */
    bd_blk_set_perm(s->target_blk, 0, BD_PERM_ALL, NULL);
    ok = bd_node_replace(s->source, s->target, errp);
    bd_block_job_drained_end(s->source);
    return ok ? 0 : -EPERM;
}

static void mirror_clean(BdJob *job)
{
    MirrorJob *s = bd_job_opaque(job);

    g_clear_pointer(&s->target_blk, bd_block_job_blk_free);
    g_clear_pointer(&s->target_hold, bd_block_job_blk_free);
    g_clear_pointer(&s->source_blk, bd_block_job_blk_free);
    g_clear_pointer(&s->dirty, bd_block_job_bitmap_free);
}

static void mirror_complete(BdJob *job, GError **errp)
{
    MirrorJob *s = bd_job_opaque(job);

    s->should_complete = true;
    bd_job_enter(job);
}

/* QEMU's mirror_cancel(): soft only when READY. */
static bool mirror_cancel(BdJob *job, bool force)
{
    return force || !bd_job_is_ready(job);
}

void mirror_job_free(void *opaque)
{
    MirrorJob *s = opaque;

    bd_block_job_blk_free(s->target_blk);
    bd_block_job_blk_free(s->target_hold);
    bd_block_job_blk_free(s->source_blk);
    bd_block_job_bitmap_free(s->dirty);
    g_free(s);
}

const BdJobType mirror_job_type = {
    .struct_size = sizeof(BdJobType),
    .name = "mirror",
    .description = "copy a node into another and pivot (blockdev-mirror)",
    .block_job = true,
    .run = mirror_run,
    .prepare = mirror_prepare,
    .clean = mirror_clean,
    .free = mirror_job_free,
    .complete = mirror_complete,
    .cancel = mirror_cancel,
};
