/*
 * The daemon's main loop (see main-loop.h).
 */
#include <signal.h>

#include <glib-unix.h>
#include <glib.h>

#include "main-loop.h"

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
