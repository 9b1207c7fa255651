/*
 * block-stream: QEMU 7.2's qmp_block_stream() and stream_start(), their
 * checks in their order and with their messages, then a "stream" job.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "job-stream.h"
#include "job-stream-schema.h"

static BdNode *lookup(const char *name, GError **errp)
{
    BdNode *node = bd_node_find(name);

    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      "", name);
    }
    return node;
}

/* The permissions the job shares on the nodes it works on (QEMU's). */
#define SHARED_BASIC (BD_PERM_CONSISTENT_READ | BD_PERM_WRITE_UNCHANGED)

static bool qmp_block_stream(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *device = bd_json_get_str(args, "device", "");
    const char *base = bd_json_get_str(args, "base", NULL);
    const char *base_node = bd_json_get_str(args, "base-node", NULL);
    const char *bottom = bd_json_get_str(args, "bottom", NULL);
    const char *backing_file = bd_json_get_str(args, "backing-file", NULL);
    const char *job_id = bd_json_get_str(args, "job-id", NULL);
    BdNode *bs, *base_bs = NULL, *bottom_bs = NULL;
    unsigned flags = 0;
    StreamJob *s;
    BdJob *job;

    if (base && base_node) {
        bd_error_setg(errp, "'base' and 'base-node' cannot be specified at "
                      "the same time");
        return false;
    }
    if (base && bottom) {
        bd_error_setg(errp, "'base' and 'bottom' cannot be specified at the "
                      "same time");
        return false;
    }
    if (bottom && base_node) {
        bd_error_setg(errp, "'bottom' and 'base-node' cannot be specified at "
                      "the same time");
        return false;
    }
    bs = bd_node_find(device);
    if (!bs) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      device, device);
        return false;
    }
    if (base) {
        base_bs = bd_node_find_backing_image(bs, base);
        if (!base_bs) {
            bd_error_setg(errp, "Can't find '%s' in the backing chain", base);
            return false;
        }
    }
    if (base_node) {
        base_bs = lookup(base_node, errp);
        if (!base_bs) {
            return false;
        }
        if (bs == base_bs || bd_node_chain_depth(bs, base_bs) == 0) {
            bd_error_setg(errp, "Node '%s' is not a backing image of '%s'",
                          base_node, device);
            return false;
        }
    }
    if (bottom) {
        bottom_bs = lookup(bottom, errp);
        if (!bottom_bs) {
            return false;
        }
        const BdBlockDriver *bottom_drv =
            bd_block_driver_find(bd_node_get_driver_name(bottom_bs), NULL);

        /* any filter driver (throttle, copy-on-read, preallocate, ...) */
        if (bottom_drv && (bottom_drv->flags & BD_DRIVER_FILTER)) {
            bd_error_setg(errp, "Node '%s' is a filter, use a non-filter "
                          "node as 'bottom'", bottom);
            return false;
        }
        if (bd_node_chain_depth(bs, bottom_bs) == 0) {
            bd_error_setg(errp, "Node '%s' is not in a chain starting from "
                          "'%s'", bottom, device);
            return false;
        }
        base_bs = bd_node_backing_node(bottom_bs);
    }
    /* QEMU's op blockers, from the top down to the base (or bottom) */
    for (BdNode *n = bs; n && n != base_bs; n = bd_node_backing_node(n)) {
        if (!bd_block_job_check_node(n, errp)) {
            return false;
        }
    }
    if (!base_bs && backing_file) {
        bd_error_setg(errp, "backing file specified, but streaming the "
                      "entire chain");
        return false;
    }
    if (json_object_has_member(args, "filter-node-name")) {
        /* refused rather than ignored: the name would name nothing */
        bd_error_setg(errp, "Parameter 'filter-node-name' is not supported: "
                      "blockd streams without a copy-on-read filter node");
        return false;
    }
    if (bd_node_is_read_only(bs)) {
        /* QEMU reopens it read-write for the job; blockd cannot yet */
        bd_error_setg(errp, "Node '%s' is read-only: block-stream needs it "
                      "writable (add it with read-only=false)", device);
        return false;
    }
    if (!bd_json_get_bool(args, "auto-finalize", true)) {
        flags |= BD_JOB_MANUAL_FINALIZE;
    }
    if (!bd_json_get_bool(args, "auto-dismiss", true)) {
        flags |= BD_JOB_MANUAL_DISMISS;
    }

    s = g_new0(StreamJob, 1);
    s->top = bs;
    s->base = base_bs;
    s->base_depth = base_bs ? bd_node_chain_depth(bs, base_bs) : INT_MAX;
    s->backing_file = g_strdup(backing_file);
    s->on_error = bd_job_on_error_parse(bd_json_get_str(args, "on-error",
                                                        NULL));
    s->held = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bd_block_job_blk_free);
    /*
     * Without job-id QEMU takes the name of the device's BlockBackend:
     * qemu-storage-daemon has none, so "" (and "Invalid job ID ''").
     */
    job = bd_job_new("stream", job_id ? job_id : "", flags, s, errp);
    if (!job) {
        stream_job_free(s);
        return false;
    }
    if (!bd_job_set_speed(job, bd_json_get_int(args, "speed", 0), errp)) {
        bd_job_early_fail(job);
        return false;
    }
    /*
     * The top: read and copied into; nobody may resize it (its length is
     * read once) or change the chain.  The layers that go away: nobody
     * may write them meanwhile.
     */
    s->blk = bd_block_job_blk_new(bs, "stream",
                                  BD_PERM_CONSISTENT_READ |
                                  BD_PERM_WRITE_UNCHANGED,
                                  SHARED_BASIC | BD_PERM_WRITE, errp);
    if (!s->blk) {
        bd_job_early_fail(job);
        return false;
    }
    for (BdNode *n = bd_node_backing_node(bs); n && n != base_bs; n = bd_node_backing_node(n)) {
        BdBlockBackend *blk = bd_block_job_blk_new(n, "stream", 0,
                                                   SHARED_BASIC, errp);

        if (!blk) {
            bd_job_early_fail(job);
            return false;
        }
        g_ptr_array_add(s->held, blk);
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand block_stream_command = {
    sizeof(BdQmpCommand), "block-stream", qmp_block_stream, 0,
};

static bool job_stream_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &stream_job_type, errp) &&
           bd_registry_add_qmp_command(reg, &block_stream_command, errp);
}

BD_PLUGIN(.name = "job-stream",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the stream job type and block-stream",
          .license = "GPL-2.0-or-later",
          .schema = job_stream_schema,
          .init = job_stream_init);
