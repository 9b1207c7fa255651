/*
 * QMP events.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_QMP_EVENT_H
#define BLOCKD_CORE_QMP_EVENT_H

#include <json-glib/json-glib.h>

/*
 * Send event @name to every negotiated QMP client as
 * {"timestamp": {"seconds": S, "microseconds": U}, "event": NAME,
 *  "data": DATA}; "data" is left out when @data is NULL.  @data is
 * borrowed (the caller keeps its reference); build it in schema member
 * order so that it prints like QEMU's.
 */
void bd_qmp_event_emit(const char *name, JsonObject *data);

#endif /* BLOCKD_CORE_QMP_EVENT_H */
