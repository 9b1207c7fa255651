/*
 * block-null: the null-co and null-aio drivers, which read as zeroes (or
 * leave the buffer alone, unless read-zeroes) and discard writes.  Useful
 * for testing and for measuring the block layer without a disk.
 *
 * null-co completes each request in its coroutine; null-aio completes it
 * through a bottom half of the node's context, the way QEMU's null-aio
 * goes through a completion callback, so both paths can be measured.
 */
#include <errno.h>
#include <string.h>

#include <blockd/blockd.h>

#include "block-null-schema.h"

typedef struct NullState {
    int64_t length;
    int64_t latency_ns;
    bool read_zeroes;
    bool aio;
    bool strong;                /* size or read-zeroes given */
} NullState;

static bool null_open(BdNode *node, JsonObject *opts, unsigned flags,
                      GError **errp)
{
    NullState *s = bd_node_get_opaque(node);

    s->length = json_object_get_int_member_with_default(opts, "size",
                                                        INT64_C(1) << 30);
    if (s->length < 0) {
        bd_error_setg(errp,
                      "Parameter 'size' expects a non-negative number below "
                      "2^64");
        return false;
    }
    s->latency_ns = json_object_get_int_member_with_default(opts,
                                                            "latency-ns", 0);
    if (s->latency_ns < 0) {
        /* uint64 in the schema: values above INT64_MAX read as negative */
        bd_error_setg(errp, "latency-ns is invalid");
        return false;
    }
    s->read_zeroes = json_object_get_boolean_member_with_default(
        opts, "read-zeroes", false);
    s->aio = strcmp(bd_node_get_driver_name(node), "null-aio") == 0;
    s->strong = json_object_has_member(opts, "size") ||
                json_object_has_member(opts, "read-zeroes");
    return true;
}

/* The options that change what the node shows (QEMU's list). */
static const char *const null_strong_options[] = {
    "size", "read-zeroes", NULL
};

/* "null-co://" names the node unless an option changed it. */
static char *null_exact_filename(BdNode *node)
{
    NullState *s = bd_node_get_opaque(node);

    return s->strong ? NULL :
        g_strdup_printf("%s://", bd_node_get_driver_name(node));
}

/* Nothing is stored anywhere. */
static int64_t null_allocated_file_size(BdNode *node)
{
    return 0;
}

/*
 * Reopen: the common options (read-only, cache, ...) change nothing here;
 * the driver's own options stay what they are, as in QEMU.
 */
static bool null_reopen_prepare(BdNode *node, JsonObject *opts,
                                void **state, GError **errp)
{
    NullState *s = bd_node_get_opaque(node);
    const char *changed = NULL;

    if (json_object_has_member(opts, "size") &&
        json_object_get_int_member(opts, "size") != s->length) {
        changed = "size";
    } else if (json_object_has_member(opts, "latency-ns") &&
               json_object_get_int_member(opts, "latency-ns") !=
               s->latency_ns) {
        changed = "latency-ns";
    } else if (json_object_has_member(opts, "read-zeroes") &&
               json_object_get_boolean_member(opts, "read-zeroes") !=
               s->read_zeroes) {
        changed = "read-zeroes";
    }
    if (changed) {
        bd_error_setg(errp, "Cannot change the option '%s'", changed);
        return false;
    }
    return true;
}

static bool null_refresh_limits(BdNode *node, BdBlockLimits *bl,
                                GError **errp)
{
    bl->supported_write_flags = BD_REQ_FUA;
    bl->supported_zero_flags = BD_REQ_FUA | BD_REQ_MAY_UNMAP;
    return true;
}

static void null_aio_complete(void *opaque)
{
    bd_aio_co_wake(opaque);
}

/* What every request does: wait the latency, or go through a BH. */
static int null_common(BdNode *node)
{
    NullState *s = bd_node_get_opaque(node);

    if (s->latency_ns) {
        bd_co_sleep_ns(s->latency_ns);
    } else if (s->aio) {
        /*
         * The requesting thread's context, not the node's: a request of
         * a multi-threaded export completes where it was issued.
         */
        bd_aio_bh_schedule_oneshot(bd_aio_current_context(),
                                   null_aio_complete, bd_coroutine_self());
        bd_coroutine_yield();
    }
    return 0;
}

static int64_t null_co_getlength(BdNode *node)
{
    NullState *s = bd_node_get_opaque(node);

    return s->length;
}

static int null_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                          BdIOVector *qiov, BdRequestFlags flags)
{
    NullState *s = bd_node_get_opaque(node);

    if (s->read_zeroes) {
        bd_iovec_memset(qiov, 0, 0, bytes);
    }
    return null_common(node);
}

static int null_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                           BdIOVector *qiov, BdRequestFlags flags)
{
    return null_common(node);
}

static int null_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                                 BdRequestFlags flags)
{
    return null_common(node);
}

static int null_co_flush(BdNode *node)
{
    return null_common(node);
}

/* As QEMU's null driver: the range maps to itself, zero if read-zeroes. */
static int null_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                                int64_t bytes, int64_t *pnum, int64_t *map,
                                BdNode **file)
{
    NullState *s = bd_node_get_opaque(node);

    *pnum = bytes;
    *map = offset;
    *file = node;
    return BD_BLOCK_OFFSET_VALID | (s->read_zeroes ? BD_BLOCK_ZERO : 0);
}

#define NULL_DRIVER(name_, desc_)                       \
    {                                                   \
        .struct_size = sizeof(BdBlockDriver),           \
        .name = (name_),                                \
        .description = (desc_),                         \
        .instance_size = sizeof(NullState),             \
        .flags = BD_DRIVER_PROTOCOL |                   \
                 BD_DRIVER_THREAD_SAFE,                 \
        .open = null_open,                              \
        .refresh_limits = null_refresh_limits,          \
        .co_getlength = null_co_getlength,              \
        .co_preadv = null_co_preadv,                    \
        .co_pwritev = null_co_pwritev,                  \
        .co_pwrite_zeroes = null_co_pwrite_zeroes,      \
        .co_flush = null_co_flush,                      \
        .co_block_status = null_co_block_status,        \
        .reopen_prepare = null_reopen_prepare,          \
        .strong_options = null_strong_options,          \
        .exact_filename = null_exact_filename,          \
        .get_allocated_file_size = null_allocated_file_size, \
    }

static const BdBlockDriver null_co_driver =
    NULL_DRIVER("null-co", "reads return zeroes, writes are discarded "
                "(coroutine completion)");

static const BdBlockDriver null_aio_driver =
    NULL_DRIVER("null-aio", "reads return zeroes, writes are discarded "
                "(callback completion)");

BD_TRACE_DEFINE(tp_block_null_init, "block_null_init");

static bool block_null_init(BdRegistry *reg, GError **errp)
{
    bd_trace_register(&tp_block_null_init);
    BD_TRACE(&tp_block_null_init, "plugin %s drivers null-co null-aio",
             bd_registry_plugin_name(reg));
    return bd_registry_add_block_driver(reg, &null_co_driver, errp) &&
           bd_registry_add_block_driver(reg, &null_aio_driver, errp);
}

BD_PLUGIN(.name = "block-null",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "null block drivers (null-co, null-aio) for testing",
          .license = "GPL-2.0-or-later",
          .schema = block_null_schema,
          .init = block_null_init);
