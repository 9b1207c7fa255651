/*
 * job-commit: the "commit" job type (job-commit.c) and block-commit,
 * which starts one (job-commit-qmp.c).
 */
#ifndef JOB_COMMIT_H
#define JOB_COMMIT_H

#include <blockd/blockd.h>

typedef struct CommitJob {
    BdNode *top;            /* the top of what is committed */
    BdNode *base;           /* what it is committed into */
    BdNode *overlay;        /* the node whose backing @top is */
    /*
     * Depth of @base below @top as bd_blk_co_allocation_depth() counts
     * it (top 1): ranges allocated above it are copied.
     */
    int base_depth;
    char *backing_file;     /* the name to record; NULL: the base's */
    BdJobOnError on_error;
    BdBlockBackend *top_blk;    /* read through */
    BdBlockBackend *base_blk;   /* written */
    GPtrArray *held;        /* the other handles: overlay, layers */

    /* committing the active layer (job-commit-active.c) */
    bool active;
    BdDirtyBitmap *dirty;   /* on @top: what is still to copy */
    bool should_complete;   /* job-complete: pivot once in sync */
    bool synced;            /* @run ended in sync: @prepare may pivot */
} CommitJob;

/* QEMU's mirror granularity for a qcow2 target: its cluster size */
#define COMMIT_ACTIVE_GRANULARITY (64 * 1024)

bd_coroutine_fn int commit_active_run(BdJob *job, GError **errp);
int commit_active_prepare(BdJob *job, GError **errp);
void commit_active_complete(BdJob *job, GError **errp);
bool commit_active_cancel(BdJob *job, bool force);

extern const BdJobType commit_job_type;

void commit_job_free(void *opaque);

#endif /* JOB_COMMIT_H */
