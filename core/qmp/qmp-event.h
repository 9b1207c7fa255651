/*
 * QMP events.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_QMP_EVENT_H
#define BLOCKD_CORE_QMP_EVENT_H

#include <json-glib/json-glib.h>

/*
 * Where events go: a sink gets every event (the whole message, borrowed)
 * and decides itself who sees it.  The monitor registers one per monitor,
 * so that this layer does not call up into it.
 */
typedef void (*BdQmpEventSink)(JsonObject *event, void *opaque);

/* Deliver events to @sink, after the sinks added before it. */
void bd_qmp_event_add_sink(BdQmpEventSink sink, void *opaque);

/* Stop delivering to @sink with @opaque (added before). */
void bd_qmp_event_remove_sink(BdQmpEventSink sink, void *opaque);

/*
 * Send event @name to every sink (the monitors: every negotiated client) as
 * {"timestamp": {"seconds": S, "microseconds": U}, "event": NAME,
 *  "data": DATA}; "data" is left out when @data is NULL.  @data is
 * borrowed (the caller keeps its reference); build it in schema member
 * order so that it prints like QEMU's.
 */
void bd_qmp_event_emit(const char *name, JsonObject *data);

#endif /* BLOCKD_CORE_QMP_EVENT_H */
