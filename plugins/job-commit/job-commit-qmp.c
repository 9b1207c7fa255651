/*
 * block-commit: QEMU 7.2's qmp_block_commit() and commit_start(), their
 * checks in their order and with their messages, then a "commit" job.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "job-commit.h"
#include "job-commit-schema.h"

static BdNode *lookup(const char *name, GError **errp)
{
    BdNode *node = bd_node_find(name);

    if (!node) {
        bd_error_setg(errp, "Cannot find device='' nor node-name='%s'",
                      name);
    }
    return node;
}

/*
 * What the job shares on the nodes it holds.  WRITE too, as QEMU's
 * commit_start() says: a node that refuses writes makes its backing edge
 * refuse them, and the base below must be written.
 */
#define SHARED_BASIC (BD_PERM_CONSISTENT_READ | BD_PERM_WRITE_UNCHANGED | \
                      BD_PERM_WRITE)

static CommitJob *commit_new(BdNode *overlay, BdNode *top, BdNode *base,
                             const char *backing_file, JsonObject *args)
{
    CommitJob *s = g_new0(CommitJob, 1);

    s->overlay = overlay;
    s->top = top;
    s->base = base;
    s->base_depth = bd_node_chain_depth(top, base);
    s->backing_file = g_strdup(backing_file);
    s->on_error = bd_job_on_error_parse(bd_json_get_str(args, "on-error",
                                                        NULL));
    s->held = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bd_block_job_blk_free);
    return s;
}

/* commit_start()'s handles: the nodes the job reads, writes and drops. */
static bool commit_take_nodes(CommitJob *s, BdNode *bs, GError **errp)
{
    uint64_t base_perm = BD_PERM_CONSISTENT_READ | BD_PERM_WRITE;
    BdBlockBackend *blk;

    /* the device and the overlay: nobody changes their chain meanwhile */
    for (BdNode *n = bs; n != s->top; n = bd_node_backing_node(n)) {
        blk = bd_block_job_blk_new(n, "commit", 0,
                                   SHARED_BASIC | BD_PERM_RESIZE, errp);
        if (!blk) {
            return false;
        }
        g_ptr_array_add(s->held, blk);
    }
    /* the layers that go away: nobody may write them */
    for (BdNode *n = bd_node_backing_node(s->top); n && n != s->base; n = bd_node_backing_node(n)) {
        blk = bd_block_job_blk_new(n, "commit", 0, SHARED_BASIC, errp);
        if (!blk) {
            return false;
        }
        g_ptr_array_add(s->held, blk);
    }
    /* QEMU's commit opens these two as BlockBackends of its own */
    s->top_blk = bd_block_job_blk_new(s->top, NULL,
                                      BD_PERM_CONSISTENT_READ,
                                      SHARED_BASIC, errp);
    if (!s->top_blk) {
        return false;
    }
    s->base_blk = bd_block_job_blk_new(s->base, NULL, base_perm,
                                       SHARED_BASIC, errp);
    if (!s->base_blk) {
        return false;
    }
    /* a shorter base grows to the top's length */
    if (bd_blk_getlength(s->base_blk) < bd_blk_getlength(s->top_blk)) {
        return bd_blk_set_perm(s->base_blk, base_perm | BD_PERM_RESIZE,
                               SHARED_BASIC, errp);
    }
    return true;
}

static bool qmp_block_commit(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *device = bd_json_get_str(args, "device", "");
    const char *job_id = bd_json_get_str(args, "job-id", NULL);
    const char *top_node = bd_json_get_str(args, "top-node", NULL);
    const char *top = bd_json_get_str(args, "top", NULL);
    const char *base_node = bd_json_get_str(args, "base-node", NULL);
    const char *base = bd_json_get_str(args, "base", NULL);
    const char *backing_file = bd_json_get_str(args, "backing-file", NULL);
    BdNode *bs, *top_bs, *base_bs, *overlay;
    unsigned flags = 0;
    CommitJob *s;
    BdJob *job;

    /*
     * The device first, with DeviceNotFound: libvirt probes for the
     * command with it (QEMU's comment); then it must be a root node.
     */
    bs = bd_node_find(device);
    if (!bs) {
        g_set_error(errp, BD_ERROR, BD_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found", device);
        return false;
    }
    if (!bd_node_is_root(bs)) {
        bd_error_setg(errp, "Need a root block node");
        return false;
    }
    if (!bd_block_job_check_node(bs, errp)) {
        return false;
    }
    top_bs = bs;
    if (top_node && top) {
        bd_error_setg(errp, "'top-node' and 'top' are mutually exclusive");
        return false;
    } else if (top_node) {
        top_bs = lookup(top_node, errp);
        if (!top_bs) {
            return false;
        }
        if (!bd_node_chain_depth(bs, top_bs)) {
            bd_error_setg(errp, "'%s' is not in this backing file chain",
                          top_node);
            return false;
        }
    } else if (top && !bd_node_file_is(bs, top)) {
        top_bs = bd_node_find_backing_image(bs, top);
    }
    if (!top_bs) {
        bd_error_setg(errp, "Top image file %s not found", top ? top : "NULL");
        return false;
    }
    if (base_node && base) {
        bd_error_setg(errp, "'base-node' and 'base' are mutually exclusive");
        return false;
    } else if (base_node) {
        base_bs = lookup(base_node, errp);
        if (!base_bs) {
            return false;
        }
        if (!bd_node_chain_depth(top_bs, base_bs)) {
            bd_error_setg(errp, "'%s' is not in this backing file chain",
                          base_node);
            return false;
        }
    } else if (base) {
        base_bs = bd_node_find_backing_image(top_bs, base);
        if (!base_bs) {
            bd_error_setg(errp, "Can't find '%s' in the backing chain", base);
            return false;
        }
    } else {
        /* QEMU's bdrv_find_base(): the bottom of the chain */
        base_bs = top_bs;
        while (bd_node_backing_node(base_bs)) {
            base_bs = bd_node_backing_node(base_bs);
        }
    }
    for (BdNode *n = top_bs; n && n != bd_node_backing_node(base_bs); n = bd_node_backing_node(n)) {
        if (!bd_block_job_check_node(n, errp)) {
            return false;
        }
    }
    if (top_bs == base_bs) {
        bd_error_setg(errp, "cannot commit an image into itself");
        return false;
    }
    if (!bd_json_get_bool(args, "auto-finalize", true)) {
        flags |= BD_JOB_MANUAL_FINALIZE;
    }
    if (!bd_json_get_bool(args, "auto-dismiss", true)) {
        flags |= BD_JOB_MANUAL_DISMISS;
    }
    if (top_bs == bs) {
        if (backing_file) {
            bd_error_setg(errp, "'backing-file' specified, but 'top' is the "
                          "active layer");
            return false;
        }
        overlay = NULL;
    } else {
        overlay = bd_node_find_overlay(bs, top_bs);
        if (!bd_block_job_check_node(overlay, errp)) {
            return false;
        }
    }
    if (json_object_has_member(args, "filter-node-name")) {
        bd_error_setg(errp, "Parameter 'filter-node-name' is not supported: "
                      "blockd commits without a filter node");
        return false;
    }
    if (bd_node_is_read_only(base_bs) ||
        (overlay && bd_node_is_read_only(overlay))) {
        /* QEMU reopens them read-write for the job; blockd cannot yet */
        bd_error_setg(errp, "Node '%s' is read-only: block-commit needs it "
                      "writable (add it with read-only=false)",
                      bd_node_get_name(bd_node_is_read_only(base_bs) ?
                                       base_bs : overlay));
        return false;
    }
    s = commit_new(overlay, top_bs, base_bs, backing_file, args);
    s->active = overlay == NULL;
    /* without job-id: the device's BlockBackend name, "" in qsd */
    job = bd_job_new("commit", job_id ? job_id : "", flags, s, errp);
    if (!job) {
        commit_job_free(s);
        return false;
    }
    if (!bd_job_set_speed(job, bd_json_get_int(args, "speed", 0), errp) ||
        !commit_take_nodes(s, bs, errp)) {
        bd_job_early_fail(job);
        return false;
    }
    if (s->active) {
        /* from now on every write to the top is recorded */
        s->dirty = bd_block_job_bitmap_new(top_bs,
                                           COMMIT_ACTIVE_GRANULARITY, errp);
        if (!s->dirty) {
            bd_job_early_fail(job);
            return false;
        }
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand block_commit_command = {
    sizeof(BdQmpCommand), "block-commit", qmp_block_commit, 0,
};

static bool job_commit_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &commit_job_type, errp) &&
           bd_registry_add_qmp_command(reg, &block_commit_command, errp);
}

BD_PLUGIN(.name = "job-commit",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the commit job type and block-commit",
          .license = "GPL-2.0-or-later",
          .schema = job_commit_schema,
          .init = job_commit_init);
