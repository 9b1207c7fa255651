/*
 * The daemon's main loop (see main-loop.h).
 */
#include <signal.h>

#include <glib-unix.h>
#include <glib.h>

#include "aio/main-loop.h"

static GMainLoop *main_loop;
static bool exit_requested;
static guint signal_sources[3];

void bd_main_loop_init(void)
{
    signal(SIGPIPE, SIG_IGN);
}

static gboolean on_signal(gpointer opaque)
{
    bd_main_loop_quit();
    return G_SOURCE_CONTINUE;
}

void bd_main_loop_handle_signals(void)
{
    static const int signals[] = { SIGINT, SIGTERM, SIGHUP };

    for (size_t i = 0; i < G_N_ELEMENTS(signals); i++) {
        if (!signal_sources[i]) {
            signal_sources[i] = g_unix_signal_add(signals[i], on_signal,
                                                  NULL);
        }
    }
}

void bd_main_loop_run(void)
{
    if (exit_requested) {
        return;
    }
    main_loop = g_main_loop_new(NULL, false);
    g_main_loop_run(main_loop);
    g_clear_pointer(&main_loop, g_main_loop_unref);
}

void bd_main_loop_quit(void)
{
    exit_requested = true;
    if (main_loop) {
        g_main_loop_quit(main_loop);
    }
}

bool bd_main_loop_exit_requested(void)
{
    return exit_requested;
}

typedef struct ShutdownNotifier {
    BdShutdownFn *fn;
    void *opaque;
} ShutdownNotifier;

static GArray *shutdown_notifiers;     /* of ShutdownNotifier, oldest first */

void bd_shutdown_add_notifier(BdShutdownFn *fn, void *opaque)
{
    ShutdownNotifier n = { fn, opaque };

    if (!shutdown_notifiers) {
        shutdown_notifiers = g_array_new(false, false,
                                         sizeof(ShutdownNotifier));
    }
    g_array_append_val(shutdown_notifiers, n);
}

void bd_shutdown_remove_notifier(BdShutdownFn *fn, void *opaque)
{
    for (guint i = 0; shutdown_notifiers && i < shutdown_notifiers->len;
         i++) {
        ShutdownNotifier *n = &g_array_index(shutdown_notifiers,
                                             ShutdownNotifier, i);

        if (n->fn == fn && n->opaque == opaque) {
            g_array_remove_index(shutdown_notifiers, i);
            return;
        }
    }
}

void bd_shutdown_run_notifiers(void)
{
    /* take the newest each time: a notifier may change the list */
    while (shutdown_notifiers && shutdown_notifiers->len) {
        guint last = shutdown_notifiers->len - 1;
        ShutdownNotifier n = g_array_index(shutdown_notifiers,
                                           ShutdownNotifier, last);

        g_array_remove_index(shutdown_notifiers, last);
        n.fn(n.opaque);
    }
}
