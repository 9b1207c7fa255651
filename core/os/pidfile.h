/*
 * The pid file of --pidfile, written and locked as QEMU's
 * qemu_write_pidfile() does: created with mode 0600, locked with an fcntl
 * write lock over the whole file (held until the process exits, so a
 * second daemon with the same path fails and leaves the file alone), then
 * truncated and filled with the pid and a newline.  If the locked file is
 * not the one at the path any more (another process removed or replaced
 * it meanwhile), it starts over.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_PIDFILE_H
#define BLOCKD_CORE_PIDFILE_H

#include <stdbool.h>

#include <glib.h>

/*
 * Write and lock @path.  The path is resolved to an absolute one for
 * bd_pidfile_remove(), so a later chdir does not matter.  Errors, in
 * QEMU's words: "Could not create 'PATH': REASON", "Cannot lock pid file:
 * REASON" (another instance holds it: "Resource temporarily
 * unavailable"), "Failed to truncate pid file: ...", "Failed to write pid
 * file", "cannot resolve PID file path: PATH: REASON".  Unlike QEMU, a
 * symlink or anything else not a regular file at @path is refused
 * ("Cannot use 'PATH' as pid file: not a regular file") and left alone.
 * Only one pid file at a time.
 */
bool bd_pidfile_write(const char *path, GError **errp);

/*
 * Remove the pid file written by bd_pidfile_write(), if any, and only if
 * the path still holds the file we locked; then release the lock.
 */
void bd_pidfile_remove(void);

#endif /* BLOCKD_CORE_PIDFILE_H */
