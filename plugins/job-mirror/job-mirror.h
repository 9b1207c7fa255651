/*
 * job-mirror: the "mirror" job type (job-mirror.c) and blockdev-mirror,
 * which starts one (job-mirror-qmp.c).
 */
#ifndef JOB_MIRROR_H
#define JOB_MIRROR_H

#include <blockd/blockd.h>

typedef enum MirrorSync {
    MIRROR_SYNC_TOP,
    MIRROR_SYNC_FULL,
    MIRROR_SYNC_NONE,
} MirrorSync;

typedef struct MirrorJob {
    BdNode *source;         /* @device */
    BdNode *target;         /* @target: takes the source's place */
    MirrorSync sync;
    uint32_t granularity;   /* bytes per dirty bit */
    int64_t buf_size;       /* one copy step at most */
    BdJobOnError on_source_error;
    BdJobOnError on_target_error;
    BdBlockBackend *source_blk; /* read through */
    BdBlockBackend *target_blk; /* written */
    BdBlockBackend *target_hold; /* the job's op blocker on @target */
    BdDirtyBitmap *dirty;   /* on @source: what is still to copy */
    bool should_complete;   /* job-complete: pivot once in sync */
    bool synced;            /* @run ended in sync: @prepare pivots */
} MirrorJob;

/* QEMU's DEFAULT_MIRROR_BUF_SIZE */
#define MIRROR_DEFAULT_BUF_SIZE (1024 * 1024)

extern const BdJobType mirror_job_type;

void mirror_job_free(void *opaque);

#endif /* JOB_MIRROR_H */
