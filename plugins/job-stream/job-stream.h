/*
 * job-stream: the "stream" job type (job-stream.c) and block-stream,
 * which starts one (job-stream-qmp.c).
 */
#ifndef JOB_STREAM_H
#define JOB_STREAM_H

#include <blockd/blockd.h>

typedef struct StreamJob {
    BdNode *top;            /* what the chain is copied into */
    BdNode *base;           /* the new backing node; NULL: none */
    /*
     * Depth of @base below @top, as bd_blk_co_allocation_depth() counts
     * (top 1, its backing 2, ...): ranges allocated at depths 2 up to
     * this one, exclusive, are copied.  INT_MAX without a base.
     */
    int base_depth;
    char *backing_file;     /* the name to record; NULL: the base's */
    BdJobOnError on_error;
    BdBlockBackend *blk;    /* on @top: copy-on-read */
    GPtrArray *held;        /* handles on the layers that go away */
} StreamJob;

extern const BdJobType stream_job_type;

void stream_job_free(void *opaque);

#endif /* JOB_STREAM_H */
