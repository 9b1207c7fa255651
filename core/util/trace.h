/*
 * Trace points: the registry of every point (the core's and the plugins',
 * see <blockd/trace.h>), the patterns that turn them on and off, and where
 * their lines go.
 *
 * Patterns are kept in the order given and applied to each point as it is
 * registered, so a pattern given on the command line reaches the points of
 * a plugin loaded later.  Main thread only, except bd_trace_emit().
 */
#ifndef BLOCKD_CORE_TRACE_H
#define BLOCKD_CORE_TRACE_H

#include <stdbool.h>
#include <stdio.h>

#include <glib.h>

#include <blockd/trace.h>

/* Whether @name is a pattern (has '*' or '?') rather than a point name. */
bool bd_trace_is_pattern(const char *name);

/*
 * Apply one events line as QEMU does: "PATTERN" turns the matching points
 * on, "-PATTERN" turns them off (g_pattern_match_simple globs).  The
 * pattern is also remembered for points registered later.  Returns false
 * only when @spec names one point (no glob) that is not registered, so
 * that the caller can warn; the name is remembered all the same.
 */
bool bd_trace_enable_events(const char *spec);

/*
 * Read an events file: one pattern per line as for
 * bd_trace_enable_events(), empty lines and lines starting with '#'
 * skipped.  Each unknown point name is appended to @unknown (if not NULL)
 * as "LINE\tNAME" (g_free'd by the array's free function).  Fails only if
 * the file cannot be opened or read, with the message "PATH: REASON".
 */
bool bd_trace_read_events_file(const char *path, GPtrArray *unknown,
                               GError **errp);

/*
 * Send trace lines to @path (created or truncated, mode 0666 less the
 * umask), or to stderr when @path is NULL.  On failure ("Error opening
 * logfile PATH: REASON") the output stays where it was.
 */
bool bd_trace_set_output(const char *path, GError **errp);

/* Whether a point called @name is registered. */
bool bd_trace_exists(const char *name);

/* Whether point @name is registered and on. */
bool bd_trace_get_state(const char *name);

/* Write the name of every registered point, one per line, sorted. */
void bd_trace_list(FILE *out);

/*
 * Forget every pattern, turn every point off and send the output back to
 * stderr (tests).  Points stay registered.
 */
void bd_trace_reset(void);

/* What bd_trace_option() asks of the caller. */
typedef enum BdTraceOptionResult {
    BD_TRACE_OPTION_OK,         /* go on with the next option */
    BD_TRACE_OPTION_EXIT,       /* help was printed: exit with status 0 */
    BD_TRACE_OPTION_FAILED,     /* an error was printed: exit with 1 */
} BdTraceOptionResult;

/*
 * Process one -T/--trace argument as qemu-storage-daemon does:
 * [enable=]PATTERN, events=FILE, file=FILE (QemuOpts syntax), applied in
 * that order.  "help" as the pattern lists every trace point on stdout
 * (loading every plugin to find theirs).  Warnings (a point name that
 * matches nothing) and errors are written to stderr in QEMU's formats,
 * prefixed with @prog; an exact name that may belong to a discovered but
 * not yet loaded plugin (see <blockd/trace.h> on names) is not warned
 * about.
 */
BdTraceOptionResult bd_trace_option(const char *prog, const char *arg);

#endif /* BLOCKD_CORE_TRACE_H */
