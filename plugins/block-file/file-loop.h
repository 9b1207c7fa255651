/*
 * block-file: where the event-loop, coroutine and thread-pool functions
 * the I/O engines use come from.
 *
 * The engines only need: fd handlers with a poll callback, bottom halves,
 * the current coroutine, yield and wake, and the thread pool.  Keeping the
 * include in one place lets the engines be compiled both into the plugin
 * and into their in-process unit test.
 */
#ifndef BLOCK_FILE_LOOP_H
#define BLOCK_FILE_LOOP_H

#include <blockd/aio.h>
#include <blockd/coroutine.h>

#endif /* BLOCK_FILE_LOOP_H */
