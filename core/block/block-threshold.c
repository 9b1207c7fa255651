/*
 * The write threshold (block-set-write-threshold): a one-shot alarm for
 * management tools that grow thin-provisioned storage before it fills.
 *
 * The request layer calls bd_node_write_threshold_check() only while a
 * threshold is set, so an unarmed node pays one compare per write.
 */
#include <blockd/error.h>

#include "block/block-qmp.h"
#include "json/json-uint64.h"
#include "qmp/qmp-event.h"

void bd_node_set_write_threshold(BdNode *node, uint64_t threshold)
{
    node->write_threshold = threshold;
}

void bd_node_write_threshold_check(BdNode *node, int64_t offset,
                                   int64_t bytes)
{
    uint64_t threshold = node->write_threshold;
    uint64_t end = (uint64_t)offset + (uint64_t)bytes;
    JsonObject *data;

    if (!threshold || end <= threshold) {
        return;
    }
    /*
     * Disarm before telling anyone.  Nodes only run requests in the main
     * context today; a node in an IOThread will need an atomic exchange
     * here and the event sent from the main loop.
     */
    node->write_threshold = 0;
    data = json_object_new();
    json_object_set_string_member(data, "node-name", node->node_name);
    /* both uint64 in the schema */
    bd_json_object_set_uint64_member(data, "amount-exceeded",
                                     end - threshold);
    bd_json_object_set_uint64_member(data, "write-threshold", threshold);
    bd_qmp_event_emit("BLOCK_WRITE_THRESHOLD", data);
    json_object_unref(data);
}

bool bd_qmp_block_set_write_threshold(JsonObject *args, JsonNode **ret,
                                      GError **errp)
{
    const char *name = json_object_get_string_member(args, "node-name");
    BdNode *node = bd_node_find(name);

    if (!node) {
        bd_error_setg(errp, "Device '%s' not found", name);
        return false;
    }
    bd_node_set_write_threshold(
        node, (uint64_t)json_object_get_int_member(args, "write-threshold"));
    return true;
}
