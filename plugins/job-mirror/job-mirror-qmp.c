/*
 * blockdev-mirror: QEMU 7.2's qmp_blockdev_mirror(),
 * blockdev_mirror_common(), mirror_start() and mirror_start_job(), their
 * checks in their order and with their messages, then a "mirror" job.
 */
#include <errno.h>
#include <string.h>

#include "job-mirror.h"
#include "job-mirror-schema.h"

/* QEMU's bdrv_lookup_bs(name, name): a device or a node name */
static BdNode *lookup(const char *name, GError **errp)
{
    BdNode *node = bd_node_find(name);

    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      name, name);
    }
    return node;
}

static MirrorSync parse_sync(const char *name)
{
    if (!strcmp(name, "top")) {
        return MIRROR_SYNC_TOP;
    }
    if (!strcmp(name, "none")) {
        return MIRROR_SYNC_NONE;
    }
    return MIRROR_SYNC_FULL;
}

/* QEMU's check_to_replace_node() for what blockd can replace */
static bool check_replaces(BdNode *bs, const char *replaces, GError **errp)
{
    BdNode *to_replace = bd_node_find(replaces);

    if (!to_replace) {
        bd_error_setg(errp, "Failed to find node with node-name='%s'",
                      replaces);
        return false;
    }
    if (!bd_block_job_check_node(to_replace, errp)) {
        return false;
    }
    /*
     * QEMU replaces @device itself or a node above it through filters
     * only; blockd has no filter node a mirror could see through yet.
     */
    if (to_replace != bs) {
        bd_error_setg(errp, "Cannot replace '%s' by a node mirrored from "
                      "'%s', because it cannot be guaranteed that doing so "
                      "would not lead to an abrupt change of visible data",
                      replaces, bd_node_get_name(bs));
        return false;
    }
    return true;
}

/* What the job lets others do with the source while it copies. */
#define SOURCE_SHARED (BD_PERM_CONSISTENT_READ | BD_PERM_WRITE_UNCHANGED | \
                       BD_PERM_WRITE)

static bool mirror_take_nodes(MirrorJob *s, GError **errp)
{
    s->source_blk = bd_block_job_blk_new(s->source, "mirror",
                                         BD_PERM_CONSISTENT_READ,
                                         SOURCE_SHARED, errp);
    if (!s->source_blk) {
        return false;
    }
    /*
     * The target as QEMU holds it: the job's op blocker (a second mirror
     * into it is refused as busy) and a BlockBackend of the job's own
     * that only the job writes (blockdev-del says "Node tgt is in use").
     */
    s->target_hold = bd_block_job_blk_new(s->target, "mirror", 0,
                                          BD_PERM_ALL, errp);
    if (!s->target_hold) {
        return false;
    }
    s->target_blk = bd_block_job_blk_new(s->target, NULL, BD_PERM_WRITE,
                                         BD_PERM_WRITE_UNCHANGED, errp);
    return s->target_blk != NULL;
}

static bool qmp_blockdev_mirror(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    const char *device = bd_json_get_str(args, "device", "");
    const char *target = bd_json_get_str(args, "target", "");
    const char *job_id = bd_json_get_str(args, "job-id", NULL);
    const char *replaces = bd_json_get_str(args, "replaces", NULL);
    const char *sync_name = bd_json_get_str(args, "sync", "full");
    const char *copy_mode = bd_json_get_str(args, "copy-mode", NULL);
    int64_t granularity = bd_json_get_int(args, "granularity", 0);
    int64_t buf_size = bd_json_get_int(args, "buf-size", 0);
    BdNode *bs, *target_bs;
    unsigned flags = 0;
    MirrorJob *s;
    BdJob *job;

    /* qmp_get_root_bs() */
    bs = lookup(device, errp);
    if (!bs) {
        return false;
    }
    if (!bd_node_is_root(bs)) {
        bd_error_setg(errp, "Need a root block node");
        return false;
    }
    target_bs = lookup(target, errp);
    if (!target_bs) {
        return false;
    }
    if (!bd_json_get_bool(args, "auto-finalize", true)) {
        flags |= BD_JOB_MANUAL_FINALIZE;
    }
    if (!bd_json_get_bool(args, "auto-dismiss", true)) {
        flags |= BD_JOB_MANUAL_DISMISS;
    }
    if (granularity != 0 &&
        (granularity < 512 || granularity > 1048576 * 64)) {
        bd_error_setg(errp, "Parameter '%s' expects %s", "granularity",
                      "a value in range [512B, 64MB]");
        return false;
    }
    if (granularity & (granularity - 1)) {
        bd_error_setg(errp, "Parameter '%s' expects %s", "granularity",
                      "a power of 2");
        return false;
    }
    if (!bd_block_job_check_node(bs, errp) ||
        !bd_block_job_check_node(target_bs, errp)) {
        return false;
    }
    if (replaces && !check_replaces(bs, replaces, errp)) {
        return false;
    }
    /* mirror_start() */
    if (!strcmp(sync_name, "incremental") || !strcmp(sync_name, "bitmap")) {
        bd_error_setg(errp, "Sync mode '%s' not supported", sync_name);
        return false;
    }
    /* mirror_start_job() */
    if (buf_size < 0) {
        bd_error_setg(errp, "Invalid parameter 'buf-size'");
        return false;
    }
    if (bs == target_bs) {
        bd_error_setg(errp, "Can't mirror node into itself");
        return false;
    }
    /* what QEMU has and blockd does not: refused, never ignored */
    if (copy_mode && !strcmp(copy_mode, "write-blocking")) {
        bd_error_setg(errp, "Parameter 'copy-mode' value 'write-blocking' "
                      "is not supported: blockd mirrors in the background "
                      "only");
        return false;
    }
    if (json_object_has_member(args, "filter-node-name")) {
        bd_error_setg(errp, "Parameter 'filter-node-name' is not supported: "
                      "blockd mirrors without a filter node");
        return false;
    }
    s = g_new0(MirrorJob, 1);
    s->source = bs;
    s->target = target_bs;
    s->sync = parse_sync(sync_name);
    if (s->sync == MIRROR_SYNC_TOP && !bd_node_backing_node(bs)) {
        s->sync = MIRROR_SYNC_FULL;
    }
    /* QEMU's default: the target's cluster size */
    s->granularity = granularity ? granularity
                                 : bd_node_default_bitmap_granularity(
                                       target_bs);
    if (buf_size == 0) {
        buf_size = MIRROR_DEFAULT_BUF_SIZE;
    }
    /* QEMU's ROUND_UP(buf_size, granularity) */
    s->buf_size = (buf_size + s->granularity - 1) /
                  s->granularity * s->granularity;
    s->on_source_error = bd_job_on_error_parse(
        bd_json_get_str(args, "on-source-error", NULL));
    s->on_target_error = bd_job_on_error_parse(
        bd_json_get_str(args, "on-target-error", NULL));
    /* without job-id: the device's BlockBackend name, "" in qsd */
    job = bd_job_new("mirror", job_id ? job_id : "", flags, s, errp);
    if (!job) {
        mirror_job_free(s);
        return false;
    }
    if (!bd_job_set_speed(job, bd_json_get_int(args, "speed", 0), errp) ||
        !mirror_take_nodes(s, errp)) {
        bd_job_early_fail(job);
        return false;
    }
    /* from now on every write to the source is recorded */
    s->dirty = bd_block_job_bitmap_new(bs, s->granularity, errp);
    if (!s->dirty) {
        bd_job_early_fail(job);
        return false;
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand blockdev_mirror_command = {
    sizeof(BdQmpCommand), "blockdev-mirror", qmp_blockdev_mirror, 0,
};

static bool job_mirror_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &mirror_job_type, errp) &&
           bd_registry_add_qmp_command(reg, &blockdev_mirror_command, errp);
}

BD_PLUGIN(.name = "job-mirror",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the mirror job type and blockdev-mirror",
          .license = "GPL-2.0-or-later",
          .schema = job_mirror_schema,
          .init = job_mirror_init);
