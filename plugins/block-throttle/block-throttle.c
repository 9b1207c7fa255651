/*
 * block-throttle: the throttle filter driver.  Every request waits until
 * the limits of its throttle group (the 'throttle-group' object named by
 * the node's option) allow it, then goes to the file node unchanged.
 * Writes, write-zeroes and discards count as writes, as in QEMU.
 *
 * A node hands its requests to the group one at a time per direction
 * (its own FIFO queue): the group lets its waiting requests pass in
 * arrival order, so with one request per node the nodes take turns, as
 * QEMU's round-robin between the members of a group.
 */
#include <errno.h>

#include <blockd/blockd.h>

#include "block-throttle-schema.h"

typedef struct ThrottleNode {
    BdChild *file;
    BdObject *group;
    const BdThrottleGroupInterface *tg;
    BdCoMutex queue[2];         /* [is_write]: this node's turn */
    int io_limits_disabled;     /* drained: requests do not wait (atomic) */
} ThrottleNode;

bd_coroutine_fn
static void throttle_intercept(ThrottleNode *s, int64_t bytes, bool is_write)
{
    bd_co_mutex_lock(&s->queue[is_write]);
    s->tg->co_intercept(s->group, bytes, is_write, &s->io_limits_disabled);
    bd_co_mutex_unlock(&s->queue[is_write]);
}

/* The throttle-group object called @name, as QEMU looks it up. */
static BdObject *find_group(const char *name,
                            const BdThrottleGroupInterface **tg,
                            GError **errp)
{
    BdObject *group = bd_object_find(name, "throttle-group");

    *tg = group ? bd_object_get_interface(group,
                                          BD_THROTTLE_GROUP_INTERFACE)
                : NULL;
    if (!*tg) {
        bd_error_setg(errp, "Throttle group '%s' does not exist", name);
        return NULL;
    }
    return group;
}

static bool throttle_open(BdNode *node, JsonObject *opts, unsigned flags,
                          GError **errp)
{
    ThrottleNode *s = bd_node_get_opaque(node);
    BdObject *group;

    bd_co_mutex_init(&s->queue[0]);
    bd_co_mutex_init(&s->queue[1]);
    /* QEMU opens the child before it looks at the group */
    s->file = bd_node_open_child(node, opts, "file",
                                 BD_CHILD_FILTERED | BD_CHILD_PRIMARY,
                                 false, errp);
    if (!s->file) {
        return false;
    }
    group = find_group(json_object_get_string_member(opts,
                                                     "throttle-group"),
                       &s->tg, errp);
    if (!group) {
        return false;
    }
    s->group = group;
    s->tg->join(s->group);
    return true;
}

/*
 * blockdev-reopen may move the node to another group (QEMU's
 * throttle_reopen_prepare); the node is drained from prepare to commit,
 * so no request is between the two groups.
 */
static bool throttle_reopen_prepare(BdNode *node, JsonObject *options,
                                    void **state, GError **errp)
{
    const BdThrottleGroupInterface *tg;
    BdObject *group = find_group(json_object_get_string_member(
                                     options, "throttle-group"), &tg, errp);

    *state = group;
    return group != NULL;
}

static void throttle_reopen_commit(BdNode *node, void *state)
{
    ThrottleNode *s = bd_node_get_opaque(node);
    BdObject *group = state;

    if (group != s->group) {
        s->tg->leave(s->group);
        s->group = group;
        s->tg = bd_object_get_interface(group, BD_THROTTLE_GROUP_INTERFACE);
        s->tg->join(s->group);
    }
}

/*
 * A drain waits for the node's requests: the throttled ones go at once
 * (a sleeping one within MAX_SLEEP_NS of the group, those queued behind
 * it in turn) instead of at the group's rate, as QEMU's throttle does.
 */
static void throttle_drained_begin(BdNode *node)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    g_atomic_int_set(&s->io_limits_disabled, 1);
}

static void throttle_drained_end(BdNode *node)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    g_atomic_int_set(&s->io_limits_disabled, 0);
}

static void throttle_close(BdNode *node)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    if (s->group) {
        s->tg->leave(s->group);
        s->group = NULL;
    }
}

static int64_t throttle_co_getlength(BdNode *node)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    return bd_child_co_getlength(s->file);
}

static int throttle_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                              BdIOVector *qiov, BdRequestFlags flags)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    throttle_intercept(s, bytes, false);
    return bd_child_co_preadv(s->file, offset, bytes, qiov, flags);
}

static int throttle_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                               BdIOVector *qiov, BdRequestFlags flags)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    throttle_intercept(s, bytes, true);
    return bd_child_co_pwritev(s->file, offset, bytes, qiov, flags);
}

static int throttle_co_pwrite_zeroes(BdNode *node, int64_t offset,
                                     int64_t bytes, BdRequestFlags flags)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    throttle_intercept(s, bytes, true);
    return bd_child_co_pwrite_zeroes(s->file, offset, bytes, flags);
}

static int throttle_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    ThrottleNode *s = bd_node_get_opaque(node);

    throttle_intercept(s, bytes, true);
    return bd_child_co_pdiscard(s->file, offset, bytes);
}

/* The group is part of what the node shows (QEMU's strong option). */
static const char *const throttle_strong_options[] = { "throttle-group",
                                                       NULL };

/* The file's image information is the node's, as for QEMU's filters. */
static int throttle_get_info(BdNode *node, bool *is_dirty)
{
    BdChild *file = bd_node_get_file(node);

    return file ? bd_node_get_info(bd_child_get_node(file), is_dirty)
                : -ENOMEDIUM;
}

static const BdBlockDriver throttle_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "throttle",
    .description = "throttle filter: requests wait for the limits of a "
                   "throttle group",
    .instance_size = sizeof(ThrottleNode),
    .flags = BD_DRIVER_FILTER | BD_DRIVER_THREAD_SAFE,
    .open = throttle_open,
    .close = throttle_close,
    .co_getlength = throttle_co_getlength,
    .strong_options = throttle_strong_options,
    .get_info = throttle_get_info,
    .reopen_prepare = throttle_reopen_prepare,
    .reopen_commit = throttle_reopen_commit,
    .drained_begin = throttle_drained_begin,
    .drained_end = throttle_drained_end,
    .co_preadv = throttle_co_preadv,
    .co_pwritev = throttle_co_pwritev,
    .co_pwrite_zeroes = throttle_co_pwrite_zeroes,
    .co_pdiscard = throttle_co_pdiscard,
};

static bool block_throttle_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &throttle_driver, errp);
}

BD_PLUGIN(.name = "block-throttle",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the throttle filter driver",
          .license = "GPL-2.0-or-later",
          .schema = block_throttle_schema,
          .init = block_throttle_init);
