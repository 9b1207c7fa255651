/*
 * QMP events (see qmp-event.h).
 */
#include "qmp/qmp-event.h"
#include "util/trace-points.h"

typedef struct Sink {
    BdQmpEventSink fn;
    void *opaque;
} Sink;

static GArray *sinks;   /* of Sink, in the order they were added */

void bd_qmp_event_add_sink(BdQmpEventSink fn, void *opaque)
{
    Sink sink = { fn, opaque };

    if (!sinks) {
        sinks = g_array_new(false, false, sizeof(Sink));
    }
    g_array_append_val(sinks, sink);
}

void bd_qmp_event_remove_sink(BdQmpEventSink fn, void *opaque)
{
    for (guint i = 0; sinks && i < sinks->len; i++) {
        Sink *sink = &g_array_index(sinks, Sink, i);

        if (sink->fn == fn && sink->opaque == opaque) {
            g_array_remove_index(sinks, i);
            break;
        }
    }
    if (sinks && !sinks->len) {
        g_clear_pointer(&sinks, g_array_unref);
    }
}

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
    for (guint i = 0; sinks && i < sinks->len; i++) {
        Sink *sink = &g_array_index(sinks, Sink, i);

        sink->fn(event, sink->opaque);
    }
}
