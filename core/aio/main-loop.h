/*
 * The daemon's main loop: QMP, chardevs, timers and everything else that
 * runs in the main thread run from it.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_MAIN_LOOP_H
#define BLOCKD_CORE_MAIN_LOOP_H

#include <stdbool.h>

/*
 * Prepare the process: SIGPIPE is ignored (a client that goes away must
 * not kill the daemon; writes fail with EPIPE instead).  Call early.
 */
void bd_main_loop_init(void);

/*
 * Make SIGINT, SIGTERM and SIGHUP end bd_main_loop_run() (as they end
 * qemu-storage-daemon).  Call once start-up is complete; until then the
 * signals keep their default action, so a start-up that blocks (a
 * chardev waiting for its first client) can still be interrupted.
 */
void bd_main_loop_handle_signals(void);

/* Run until bd_main_loop_quit() or one of the signals above. */
void bd_main_loop_run(void);

/*
 * Ask the loop to end (the 'quit' command, signals).  Safe before
 * bd_main_loop_run(): the next run returns at once.
 */
void bd_main_loop_quit(void);

/* Whether an exit has been requested. */
bool bd_main_loop_exit_requested(void);

/*
 * Shutdown notifiers: how subsystems (exports, jobs, servers) learn that
 * the daemon is terminating, once its exit is requested for good (after
 * the main loop has ended, or inside 'quit' before its reply) and before
 * monitors, chardevs and the pid file go.  A notifier finishes or
 * cancels its subsystem's work and closes what it opened; it may run the
 * main context (e.g. to let in-flight requests complete) but must not
 * wait for new clients.
 */
typedef void BdShutdownFn(void *opaque);

/*
 * Call @fn(@opaque) at shutdown.  Notifiers run newest first (what was
 * set up last goes first), each once.
 */
void bd_shutdown_add_notifier(BdShutdownFn *fn, void *opaque);

/* Withdraw a notifier added with the same @fn and @opaque, if any. */
void bd_shutdown_remove_notifier(BdShutdownFn *fn, void *opaque);

/*
 * Run and forget every notifier (newest first).  A notifier may add or
 * remove others; those added meanwhile run too.  Called by main on every
 * way out after set-up began, including failed start-ups.
 */
void bd_shutdown_run_notifiers(void);

#endif /* BLOCKD_CORE_MAIN_LOOP_H */
