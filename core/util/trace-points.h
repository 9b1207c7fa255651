/*
 * The core's trace points, one per place worth watching; fire them with
 * BD_TRACE(&bd_tp_NAME, ...) (see <blockd/trace.h>).  Each is documented
 * with the text it writes after its name.
 */
#ifndef BLOCKD_CORE_TRACE_POINTS_H
#define BLOCKD_CORE_TRACE_POINTS_H

#include <blockd/trace.h>

/* "chardev ID": a QMP client connected to a monitor */
extern BdTracePoint bd_tp_monitor_accept;
/* "chardev ID": a monitor's client went away */
extern BdTracePoint bd_tp_monitor_close;
/* "chardev ID req: JSON": a request as the monitor received it */
extern BdTracePoint bd_tp_qmp_command;
/* "chardev ID resp: JSON": a reply or greeting as the monitor sends it */
extern BdTracePoint bd_tp_qmp_reply;
/* "command NAME": the dispatcher calls a command's handler */
extern BdTracePoint bd_tp_qmp_dispatch;
/* "command NAME class CLASS desc TEXT": a command's handler failed */
extern BdTracePoint bd_tp_qmp_dispatch_error;
/* "event NAME": an event is sent to the monitors */
extern BdTracePoint bd_tp_qmp_event;
/* "plugin NAME path PATH": the loader opens a plugin's code */
extern BdTracePoint bd_tp_plugin_load;
/* "plugin NAME": a plugin's init succeeded */
extern BdTracePoint bd_tp_plugin_loaded;
/* "plugin NAME error TEXT": a plugin was refused or failed */
extern BdTracePoint bd_tp_plugin_load_failed;
/* "pid PID path PATH": the pid file was written */
extern BdTracePoint bd_tp_pidfile_written;
/* "state STATE": the daemon's life: ready, stopping */
extern BdTracePoint bd_tp_daemon_state;

/* Register every point above (idempotent).  Call first thing in main. */
void bd_trace_register_core(void);

#endif /* BLOCKD_CORE_TRACE_POINTS_H */
