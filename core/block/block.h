/*
 * Start-up of the block layer and the --blockdev option.
 */
#ifndef BLOCKD_CORE_BLOCK_QMP_H
#define BLOCKD_CORE_BLOCK_QMP_H

#include <stdbool.h>

#include <glib.h>

/*
 * Create the main thread's AioContext and register the block layer's QMP
 * commands.  Main thread, once, before any node is opened.
 */
void bd_block_init(void);

/*
 * --blockdev @arg (keyval with an implied 'driver', or JSON): checked
 * against BlockdevOptions and opened as blockdev-add would.  Sets @errp
 * with the message qemu-storage-daemon prints.  Main loop.
 */
bool bd_blockdev_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_BLOCK_QMP_H */
