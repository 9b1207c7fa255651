/*
 * Leaky buckets with bursts, as QEMU's util/throttle.c: the arithmetic of
 * a throttle group's limits, without locks or timers (the object adds
 * them), so that it can be tested alone.
 */
#ifndef THROTTLE_H
#define THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* QEMU's ceiling on a rate (1e15): above it the arithmetic overflows. */
#define THROTTLE_VALUE_MAX 1000000000000000LL

typedef enum {
    THROTTLE_BPS_TOTAL,
    THROTTLE_BPS_READ,
    THROTTLE_BPS_WRITE,
    THROTTLE_OPS_TOTAL,
    THROTTLE_OPS_READ,
    THROTTLE_OPS_WRITE,
    THROTTLE_BUCKETS
} ThrottleBucketType;

typedef struct ThrottleBucket {
    uint64_t avg;               /* the sustained rate, units per second */
    uint64_t max;               /* the burst rate */
    uint64_t burst_length;      /* seconds a burst at max may last */
    double level;               /* units in the bucket now */
    double burst_level;         /* units in the burst bucket now */
} ThrottleBucket;

typedef struct ThrottleConfig {
    ThrottleBucket buckets[THROTTLE_BUCKETS];
    uint64_t op_size;           /* iops-size */
} ThrottleConfig;

typedef struct ThrottleState {
    ThrottleConfig cfg;
    int64_t previous_leak;      /* ns, bd_clock_ns()'s clock */
} ThrottleState;

/* No limits, burst lengths 1 (QEMU's throttle_config_init()). */
void throttle_config_init(ThrottleConfig *cfg);

/* Whether @cfg is a combination QEMU accepts, with QEMU's messages. */
bool throttle_is_valid(const ThrottleConfig *cfg, GError **errp);

/* Install new limits; the levels start empty, as in QEMU. */
void throttle_config(ThrottleState *ts, const ThrottleConfig *cfg,
                     int64_t now);

/* Empty the buckets for the time between the last call and @now. */
void throttle_leak(ThrottleState *ts, int64_t now);

/* Nanoseconds a request must wait before it may go (0: now). */
int64_t throttle_compute_wait_for(ThrottleState *ts, bool is_write);

/* Count a request of @bytes bytes that goes now. */
void throttle_account(ThrottleState *ts, bool is_write, uint64_t bytes);

#endif /* THROTTLE_H */
