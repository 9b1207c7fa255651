/*
 * QMP monitors: the QMP protocol served on a character device.
 *
 * A monitor serves one client at a time (its chardev accepts the next one
 * when the current one leaves); the daemon may have several monitors.
 * Each client gets the greeting, must negotiate capabilities with
 * qmp_capabilities (optionally enabling "oob"), and then sends commands,
 * which run in the main loop in the order received.  Replies and events
 * are JSON objects ended by "\r\n" (in pretty mode every line ends so).
 *
 * A client cannot hurt the others: malformed input only costs it error
 * replies; a client that does not read its replies stops being read once
 * 1 MiB of output is pending, and is dropped if 64 MiB pile up (events).
 * Commands it sent meanwhile wait, parsed, and run once it has read
 * enough: however far behind it is, it gets every reply, in order, and
 * blockd holds at most one read's worth of its commands (64 KiB of text).
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_MONITOR_H
#define BLOCKD_CORE_MONITOR_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "chardev/chardev.h"

typedef struct BdMonitor BdMonitor;

/* Output pending beyond which a client's input is no longer read. */
#define BD_MONITOR_OUTPUT_HIGH (1u << 20)
/* Output pending beyond which a client is disconnected. */
#define BD_MONITOR_OUTPUT_MAX (64u << 20)

/*
 * Serve QMP on chardev @chardev_id.  Fails with qemu-storage-daemon's
 * messages: 'chardev "X" not found', "Device 'X' is in use".
 */
BdMonitor *bd_monitor_new(const char *chardev_id, bool pretty,
                          GError **errp);

/* Stop serving: the client (if any) is disconnected, the chardev freed
 * for other use. */
void bd_monitor_free(BdMonitor *mon);

/* Free every monitor (shutdown, tests). */
void bd_monitors_free_all(void);

/*
 * Try for up to @timeout_ms to write out what is pending for every
 * client (at shutdown, so that the reply to 'quit' is seen).
 */
void bd_monitors_flush(int timeout_ms);

#endif /* BLOCKD_CORE_MONITOR_H */
