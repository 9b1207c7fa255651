/*
 * The throttle group's leaky buckets (plugins/object-throttle-group/
 * throttle.c): which combinations are refused and with what message, how
 * long a request waits under a rate, a burst and iops-size.
 */
#include <glib.h>

#include "../../plugins/object-throttle-group/throttle.h"

#define MS 1000000LL

static void assert_invalid(const ThrottleConfig *cfg, const char *message)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(throttle_is_valid(cfg, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, message);
}

static void test_valid(void)
{
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    g_assert_true(throttle_is_valid(&cfg, NULL));

    cfg.buckets[THROTTLE_BPS_TOTAL].avg = 100;
    cfg.buckets[THROTTLE_OPS_READ].avg = 10;
    cfg.buckets[THROTTLE_OPS_READ].max = 20;
    cfg.buckets[THROTTLE_OPS_READ].burst_length = 30;
    cfg.op_size = 4096;
    g_assert_true(throttle_is_valid(&cfg, NULL));
}

static void test_invalid(void)
{
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_OPS_TOTAL].avg = 1;
    cfg.buckets[THROTTLE_OPS_WRITE].avg = 1;
    assert_invalid(&cfg, "bps/iops/max total values and read/write values "
                   "cannot be used at the same time");

    throttle_config_init(&cfg);
    cfg.op_size = 512;
    cfg.buckets[THROTTLE_BPS_TOTAL].avg = 1;
    assert_invalid(&cfg, "iops size requires an iops value to be set");

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_BPS_READ].avg = THROTTLE_VALUE_MAX + 1;
    assert_invalid(&cfg, "bps/iops/max values must be within "
                   "[0, 1000000000000000]");

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_BPS_READ].burst_length = 0;
    assert_invalid(&cfg, "the burst length cannot be 0");

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_BPS_READ].avg = 5;
    cfg.buckets[THROTTLE_BPS_READ].burst_length = 2;
    assert_invalid(&cfg, "burst length set without burst rate");

    cfg.buckets[THROTTLE_BPS_READ].max = 1000;
    cfg.buckets[THROTTLE_BPS_READ].burst_length = THROTTLE_VALUE_MAX;
    assert_invalid(&cfg, "burst length too high for this burst rate");

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_OPS_TOTAL].max = 5;
    assert_invalid(&cfg, "bps_max/iops_max require corresponding bps/iops "
                   "values");

    cfg.buckets[THROTTLE_OPS_TOTAL].avg = 6;
    assert_invalid(&cfg, "bps_max/iops_max cannot be lower than bps/iops");
}

/* A rate alone lets a tenth of a second's worth pass, then paces. */
static void test_rate(void)
{
    ThrottleState ts;
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_OPS_TOTAL].avg = 100;
    throttle_config(&ts, &cfg, 0);
    for (int i = 0; i < 11; i++) {
        g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 0);
        throttle_account(&ts, false, 512);
    }
    /* 11 in a bucket of 10: one operation too many, 1/100 s */
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 10 * MS);
    g_assert_cmpint(throttle_compute_wait_for(&ts, true), ==, 10 * MS);
    throttle_leak(&ts, 10 * MS);
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 0);
}

/* Reads and writes fill their own buckets. */
static void test_directions(void)
{
    ThrottleState ts;
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_BPS_WRITE].avg = 1000;
    throttle_config(&ts, &cfg, 0);
    throttle_account(&ts, true, 300);
    g_assert_cmpint(throttle_compute_wait_for(&ts, true), ==, 200 * MS);
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 0);
    throttle_account(&ts, false, 1 << 20);
    g_assert_cmpint(throttle_compute_wait_for(&ts, true), ==, 200 * MS);
}

/* With a burst rate the bucket holds max * burst-length, and the burst
 * itself goes no faster than max. */
static void test_burst(void)
{
    ThrottleState ts;
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_OPS_TOTAL].avg = 10;
    cfg.buckets[THROTTLE_OPS_TOTAL].max = 100;
    cfg.buckets[THROTTLE_OPS_TOTAL].burst_length = 2;
    throttle_config(&ts, &cfg, 0);
    for (int i = 0; i < 11; i++) {
        throttle_account(&ts, false, 512);
    }
    /* the burst bucket (max / 10 = 10) is one over: 1/100 s */
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 10 * MS);
    /* past the whole burst (max * burst-length = 200) the rate is avg:
     * 50 over at 10/s */
    for (int i = 11; i < 250; i++) {
        throttle_account(&ts, false, 512);
    }
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 5000 * MS);
}

/* A request larger than iops-size counts as several operations. */
static void test_iops_size(void)
{
    ThrottleState ts;
    ThrottleConfig cfg;

    throttle_config_init(&cfg);
    cfg.buckets[THROTTLE_OPS_TOTAL].avg = 10;
    cfg.op_size = 4096;
    throttle_config(&ts, &cfg, 0);
    throttle_account(&ts, false, 65536);
    /* 16 operations in a bucket of 1: 15 over at 10/s */
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 1500 * MS);
    throttle_config(&ts, &cfg, 0);
    throttle_account(&ts, false, 1024);
    g_assert_cmpint(throttle_compute_wait_for(&ts, false), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/throttle/valid", test_valid);
    g_test_add_func("/throttle/invalid", test_invalid);
    g_test_add_func("/throttle/rate", test_rate);
    g_test_add_func("/throttle/directions", test_directions);
    g_test_add_func("/throttle/burst", test_burst);
    g_test_add_func("/throttle/iops-size", test_iops_size);
    return g_test_run();
}
