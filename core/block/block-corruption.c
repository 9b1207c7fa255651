/*
 * BLOCK_IMAGE_CORRUPTED: format drivers report metadata they find
 * corrupt.  They may find it in any thread (a node in an IOThread); QMP
 * events go out from the main loop, so the event is built here and sent
 * from a bottom half there.
 */
#include <blockd/block.h>

#include "block/block-int.h"
#include "qmp/qmp-event.h"

static void emit_bh(void *opaque)
{
    JsonObject *data = opaque;

    bd_qmp_event_emit("BLOCK_IMAGE_CORRUPTED", data);
    json_object_unref(data);
}

void bd_node_report_corruption(BdNode *node, const char *msg,
                               int64_t offset, int64_t size, bool fatal)
{
    JsonObject *data = json_object_new();

    /* in the schema's member order, as QEMU prints it */
    json_object_set_string_member(data, "device", "");
    json_object_set_string_member(data, "node-name", node->node_name);
    json_object_set_string_member(data, "msg", msg);
    if (offset >= 0) {
        json_object_set_int_member(data, "offset", offset);
    }
    if (size >= 0) {
        json_object_set_int_member(data, "size", size);
    }
    json_object_set_boolean_member(data, "fatal", fatal);
    bd_aio_bh_schedule_oneshot(bd_aio_main_context(), emit_bh, data);
}
