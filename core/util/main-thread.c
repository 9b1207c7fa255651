/*
 * The main thread (see main-thread.h).
 */
#include <pthread.h>

#include "util/main-thread.h"

static pthread_t main_thread;
static gsize main_thread_set;

void bd_main_thread_set(void)
{
    if (g_once_init_enter(&main_thread_set)) {
        main_thread = pthread_self();
        g_once_init_leave(&main_thread_set, 1);
    }
}

bool bd_in_main_thread(void)
{
    return !g_atomic_pointer_get(&main_thread_set) ||
           pthread_equal(pthread_self(), main_thread);
}
