/*
 * The main thread, and the check at the entry of functions the plugin ABI
 * documents as "main loop" or "main thread" only.
 */
#ifndef BLOCKD_CORE_UTIL_MAIN_THREAD_H
#define BLOCKD_CORE_UTIL_MAIN_THREAD_H

#include <stdbool.h>

#include <glib.h>

/*
 * Record the calling thread as the main thread (the main AioContext's
 * creation does, once).
 */
void bd_main_thread_set(void);

/* Whether the caller is the main thread (true before one is recorded). */
bool bd_in_main_thread(void);

/*
 * At the entry of a main-loop-only ABI function: a plugin that calls it
 * from another thread (an IOThread) stops here, naming the function,
 * instead of racing with the main loop.
 */
#define BD_ASSERT_MAIN_LOOP() \
    do { \
        if (G_UNLIKELY(!bd_in_main_thread())) { \
            g_error("%s called outside the main loop", G_STRFUNC); \
        } \
    } while (0)

#endif /* BLOCKD_CORE_UTIL_MAIN_THREAD_H */
