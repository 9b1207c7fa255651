/*
 * Leaky buckets with bursts (see throttle.h).  The figures and the
 * messages are QEMU's (util/throttle.c), so that limits hold and refuse
 * the same way as in qemu-storage-daemon.
 */
#include <blockd/blockd.h>

#include "throttle.h"

#define NS_PER_SEC 1000000000.0

void throttle_config_init(ThrottleConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int i = 0; i < THROTTLE_BUCKETS; i++) {
        cfg->buckets[i].burst_length = 1;
    }
}

bool throttle_is_valid(const ThrottleConfig *cfg, GError **errp)
{
    const ThrottleBucket *b = cfg->buckets;
    bool bps_flag = b[THROTTLE_BPS_TOTAL].avg &&
                    (b[THROTTLE_BPS_READ].avg || b[THROTTLE_BPS_WRITE].avg);
    bool ops_flag = b[THROTTLE_OPS_TOTAL].avg &&
                    (b[THROTTLE_OPS_READ].avg || b[THROTTLE_OPS_WRITE].avg);
    bool bps_max_flag = b[THROTTLE_BPS_TOTAL].max &&
                        (b[THROTTLE_BPS_READ].max ||
                         b[THROTTLE_BPS_WRITE].max);
    bool ops_max_flag = b[THROTTLE_OPS_TOTAL].max &&
                        (b[THROTTLE_OPS_READ].max ||
                         b[THROTTLE_OPS_WRITE].max);

    if (bps_flag || ops_flag || bps_max_flag || ops_max_flag) {
        bd_error_setg(errp, "bps/iops/max total values and read/write values"
                      " cannot be used at the same time");
        return false;
    }
    if (cfg->op_size && !b[THROTTLE_OPS_TOTAL].avg &&
        !b[THROTTLE_OPS_READ].avg && !b[THROTTLE_OPS_WRITE].avg) {
        bd_error_setg(errp, "iops size requires an iops value to be set");
        return false;
    }
    for (int i = 0; i < THROTTLE_BUCKETS; i++) {
        const ThrottleBucket *bkt = &b[i];

        if (bkt->avg > THROTTLE_VALUE_MAX || bkt->max > THROTTLE_VALUE_MAX) {
            bd_error_setg(errp, "bps/iops/max values must be within [0, %lld]",
                          THROTTLE_VALUE_MAX);
            return false;
        }
        if (!bkt->burst_length) {
            bd_error_setg(errp, "the burst length cannot be 0");
            return false;
        }
        if (bkt->burst_length > 1 && !bkt->max) {
            bd_error_setg(errp, "burst length set without burst rate");
            return false;
        }
        if (bkt->max && bkt->burst_length > THROTTLE_VALUE_MAX / bkt->max) {
            bd_error_setg(errp, "burst length too high for this burst rate");
            return false;
        }
        if (bkt->max && !bkt->avg) {
            bd_error_setg(errp, "bps_max/iops_max require corresponding"
                          " bps/iops values");
            return false;
        }
        if (bkt->max && bkt->max < bkt->avg) {
            bd_error_setg(errp,
                          "bps_max/iops_max cannot be lower than bps/iops");
            return false;
        }
    }
    return true;
}

void throttle_config(ThrottleState *ts, const ThrottleConfig *cfg,
                     int64_t now)
{
    ts->cfg = *cfg;
    for (int i = 0; i < THROTTLE_BUCKETS; i++) {
        ts->cfg.buckets[i].level = 0;
        ts->cfg.buckets[i].burst_level = 0;
    }
    ts->previous_leak = now;
}

static void leak_bucket(ThrottleBucket *bkt, int64_t delta_ns)
{
    double leak = bkt->avg * (double)delta_ns / NS_PER_SEC;

    bkt->level = MAX(bkt->level - leak, 0);
    if (bkt->burst_length > 1) {
        leak = bkt->max * (double)delta_ns / NS_PER_SEC;
        bkt->burst_level = MAX(bkt->burst_level - leak, 0);
    }
}

void throttle_leak(ThrottleState *ts, int64_t now)
{
    int64_t delta = now - ts->previous_leak;

    ts->previous_leak = now;
    if (delta <= 0) {
        return;
    }
    for (int i = 0; i < THROTTLE_BUCKETS; i++) {
        leak_bucket(&ts->cfg.buckets[i], delta);
    }
}

static int64_t wait_for(double rate, double extra)
{
    return (int64_t)(extra * NS_PER_SEC / rate);
}

/* QEMU's throttle_compute_wait() for one bucket. */
static int64_t bucket_wait(const ThrottleBucket *bkt)
{
    double bucket_size, burst_bucket_size, extra;

    if (!bkt->avg) {
        return 0;
    }
    if (!bkt->max) {
        /* short bursts, or every other request would wait */
        bucket_size = (double)bkt->avg / 10;
        burst_bucket_size = 0;
    } else {
        /* the burst at max must be spent before the rate drops to avg */
        bucket_size = (double)bkt->max * bkt->burst_length;
        burst_bucket_size = (double)bkt->max / 10;
    }
    extra = bkt->level - bucket_size;
    if (extra > 0) {
        return wait_for(bkt->avg, extra);
    }
    if (bkt->burst_length > 1) {
        extra = bkt->burst_level - burst_bucket_size;
        if (extra > 0) {
            return wait_for(bkt->max, extra);
        }
    }
    return 0;
}

int64_t throttle_compute_wait_for(ThrottleState *ts, bool is_write)
{
    static const ThrottleBucketType to_check[2][4] = {
        { THROTTLE_BPS_TOTAL, THROTTLE_OPS_TOTAL, THROTTLE_BPS_READ,
          THROTTLE_OPS_READ },
        { THROTTLE_BPS_TOTAL, THROTTLE_OPS_TOTAL, THROTTLE_BPS_WRITE,
          THROTTLE_OPS_WRITE },
    };
    int64_t max_wait = 0;

    for (int i = 0; i < 4; i++) {
        max_wait = MAX(max_wait,
                       bucket_wait(&ts->cfg.buckets[to_check[is_write][i]]));
    }
    return max_wait;
}

static void fill(ThrottleBucket *bkt, double units)
{
    bkt->level += units;
    if (bkt->burst_length > 1) {
        bkt->burst_level += units;
    }
}

void throttle_account(ThrottleState *ts, bool is_write, uint64_t bytes)
{
    ThrottleBucket *b = ts->cfg.buckets;
    double units = 1.0;

    /* a large request counts as several operations of iops-size */
    if (ts->cfg.op_size && bytes > ts->cfg.op_size) {
        units = (double)bytes / ts->cfg.op_size;
    }
    fill(&b[THROTTLE_BPS_TOTAL], bytes);
    fill(&b[THROTTLE_OPS_TOTAL], units);
    fill(&b[is_write ? THROTTLE_BPS_WRITE : THROTTLE_BPS_READ], bytes);
    fill(&b[is_write ? THROTTLE_OPS_WRITE : THROTTLE_OPS_READ], units);
}
