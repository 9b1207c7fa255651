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

#endif /* BLOCKD_CORE_MAIN_LOOP_H */
