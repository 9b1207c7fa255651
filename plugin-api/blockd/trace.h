/*
 * blockd plugin ABI: trace points.
 *
 * A trace point is a named place in the code that, when the user enables
 * it (-T/--trace with a glob pattern, or an events file), writes one line
 * "NAME TEXT" to the trace output (stderr, or the file= of -T).  When it is
 * disabled its cost is one test of a flag: the arguments are not even
 * evaluated.
 *
 * A plugin defines its trace points as static data, registers each from
 * its init function, and fires them with BD_TRACE:
 *
 *     BD_TRACE_DEFINE(tp_open, "block_foo_open");
 *     ...in init:   bd_trace_register(&tp_open);
 *     ...anywhere:  BD_TRACE(&tp_open, "file %s flags 0x%x", name, flags);
 *
 * Names are identifiers in lower case that begin with the plugin's name,
 * '-' written as '_' ("block_foo_" for plugin block-foo), so that "-T
 * enable=block_foo_*" selects one plugin's points and the daemon can tell a
 * plugin's point from a misspelt one before the plugin is loaded.
 */
#ifndef BLOCKD_TRACE_H
#define BLOCKD_TRACE_H

#include <stdbool.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One trace point.  @name is set by its owner and never changes; @enabled
 * is written by the daemon only (non-zero while the point is on) and read
 * by BD_TRACE without a lock: a thread may see a change a little late,
 * which only moves the point where tracing starts or stops.
 */
typedef struct BdTracePoint {
    const char *name;
    volatile int enabled;
} BdTracePoint;

/* Define a static trace point @var called @tp_name (a string literal). */
#define BD_TRACE_DEFINE(var, tp_name) \
    static BdTracePoint var = { (tp_name), 0 }

/*
 * Whether @tp (a BdTracePoint *) is on: test it to skip work done only to
 * build a trace point's arguments.
 */
#define BD_TRACE_ENABLED(tp) G_UNLIKELY((tp)->enabled != 0)

/*
 * Fire @tp: when it is on, write "NAME " followed by the printf-style
 * text.  The arguments are evaluated only when the point is on.
 */
#define BD_TRACE(tp, ...) \
    do { \
        if (BD_TRACE_ENABLED(tp)) { \
            bd_trace_emit((tp), __VA_ARGS__); \
        } \
    } while (0)

/*
 * Make @tp known to the daemon (-T help lists it, patterns match it): the
 * patterns given so far are applied to it at once, in their order.  @tp
 * must stay valid for the life of the process (static data; plugins are
 * never unloaded).  Registering the same struct twice is harmless.  Main
 * thread only (a plugin's init runs there).
 */
void bd_trace_register(BdTracePoint *tp);

/*
 * Write one trace line for @tp, "NAME TEXT\n", with one write so that
 * lines of different threads do not mix.  Normally called through
 * BD_TRACE, which checks @tp->enabled first; this function does not check
 * it again.  Any thread.
 */
void bd_trace_emit(const BdTracePoint *tp, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_TRACE_H */
