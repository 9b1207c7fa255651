/*
 * The core's trace points (see trace-points.h).
 */
#include "util/trace-points.h"
#include "util/trace.h"

BdTracePoint bd_tp_monitor_accept = { "monitor_accept", 0 };
BdTracePoint bd_tp_monitor_close = { "monitor_close", 0 };
BdTracePoint bd_tp_qmp_command = { "qmp_command", 0 };
BdTracePoint bd_tp_qmp_reply = { "qmp_reply", 0 };
BdTracePoint bd_tp_qmp_dispatch = { "qmp_dispatch", 0 };
BdTracePoint bd_tp_qmp_dispatch_error = { "qmp_dispatch_error", 0 };
BdTracePoint bd_tp_qmp_event = { "qmp_event", 0 };
BdTracePoint bd_tp_plugin_load = { "plugin_load", 0 };
BdTracePoint bd_tp_plugin_loaded = { "plugin_loaded", 0 };
BdTracePoint bd_tp_plugin_load_failed = { "plugin_load_failed", 0 };
BdTracePoint bd_tp_pidfile_written = { "pidfile_written", 0 };
BdTracePoint bd_tp_daemon_state = { "daemon_state", 0 };

void bd_trace_register_core(void)
{
    static BdTracePoint *const all[] = {
        &bd_tp_monitor_accept, &bd_tp_monitor_close, &bd_tp_qmp_command,
        &bd_tp_qmp_reply, &bd_tp_qmp_dispatch, &bd_tp_qmp_dispatch_error,
        &bd_tp_qmp_event, &bd_tp_plugin_load, &bd_tp_plugin_loaded,
        &bd_tp_plugin_load_failed, &bd_tp_pidfile_written,
        &bd_tp_daemon_state,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
        bd_trace_register(all[i]);
    }
}
