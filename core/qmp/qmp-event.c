/*
 * QMP events (see qmp-event.h).
 */
#include "monitor/monitor.h"
#include "qmp/qmp-event.h"
#include "util/trace-points.h"

void bd_qmp_event_emit(const char *name, JsonObject *data)
{
    g_autoptr(JsonObject) event = json_object_new();
    JsonObject *ts = json_object_new();
    gint64 now = g_get_real_time();

    BD_TRACE(&bd_tp_qmp_event, "event %s", name);

    /* the order QEMU fills an event in */
    json_object_set_string_member(event, "event", name);
    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(event, "timestamp", ts);
    if (data) {
        json_object_set_object_member(event, "data",
                                      json_object_ref(data));
    }
    bd_monitors_broadcast(event);
}
