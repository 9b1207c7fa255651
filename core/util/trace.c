/*
 * Trace points (see trace.h and <blockd/trace.h>).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <blockd/error.h>

#include "util/trace.h"

typedef struct TracePattern {
    char *glob;
    bool enable;
} TracePattern;

static GPtrArray *points;       /* of BdTracePoint *, registration order */
static GPtrArray *patterns;     /* of TracePattern *, in the order given */
static int out_fd = STDERR_FILENO;

static void pattern_free(gpointer p)
{
    TracePattern *tp = p;

    g_free(tp->glob);
    g_free(tp);
}

bool bd_trace_is_pattern(const char *name)
{
    return strchr(name, '*') || strchr(name, '?');
}

static void apply(BdTracePoint *point, const TracePattern *pat)
{
    if (g_pattern_match_simple(pat->glob, point->name)) {
        point->enabled = pat->enable;
    }
}

void bd_trace_register(BdTracePoint *tp)
{
    if (!points) {
        points = g_ptr_array_new();
    }
    for (guint i = 0; i < points->len; i++) {
        if (points->pdata[i] == tp) {
            return;
        }
    }
    g_ptr_array_add(points, tp);
    for (guint i = 0; patterns && i < patterns->len; i++) {
        apply(tp, patterns->pdata[i]);
    }
}

bool bd_trace_exists(const char *name)
{
    for (guint i = 0; points && i < points->len; i++) {
        if (strcmp(((BdTracePoint *)points->pdata[i])->name, name) == 0) {
            return true;
        }
    }
    return false;
}

bool bd_trace_get_state(const char *name)
{
    for (guint i = 0; points && i < points->len; i++) {
        BdTracePoint *tp = points->pdata[i];

        if (strcmp(tp->name, name) == 0) {
            return tp->enabled != 0;
        }
    }
    return false;
}

bool bd_trace_enable_events(const char *spec)
{
    TracePattern *pat = g_new0(TracePattern, 1);

    pat->enable = spec[0] != '-';
    pat->glob = g_strdup(pat->enable ? spec : spec + 1);
    if (!patterns) {
        patterns = g_ptr_array_new_with_free_func(pattern_free);
    }
    g_ptr_array_add(patterns, pat);
    for (guint i = 0; points && i < points->len; i++) {
        apply(points->pdata[i], pat);
    }
    return bd_trace_is_pattern(pat->glob) || bd_trace_exists(pat->glob);
}

bool bd_trace_read_events_file(const char *path, GPtrArray *unknown,
                               GError **errp)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    bool ok = true;

    if (!f) {
        bd_error_setg(errp, "%s: %s", path,
                      g_strerror(errno));
        return false;
    }
    errno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (!bd_trace_enable_events(line) && unknown) {
            g_ptr_array_add(unknown,
                            g_strdup_printf("%u\t%s", lineno,
                                            line[0] == '-' ? line + 1
                                                           : line));
        }
    }
    if (ferror(f)) {
        bd_error_setg(errp, "%s: %s", path,
                      g_strerror(errno ? errno : EIO));
        ok = false;
    }
    free(line);
    fclose(f);
    return ok;
}

bool bd_trace_set_output(const char *path, GError **errp)
{
    int fd = STDERR_FILENO;

    if (path) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND,
                  0666);
        if (fd < 0) {
            bd_error_setg(errp, "Error opening logfile %s: %s", path,
                          g_strerror(errno));
            return false;
        }
    }
    if (out_fd != STDERR_FILENO) {
        close(out_fd);
    }
    out_fd = fd;
    return true;
}

void bd_trace_emit(const BdTracePoint *tp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;
    size_t len, done = 0;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strconcat(tp->name, " ", text, "\n", NULL);
    len = strlen(line);
    while (done < len) {
        ssize_t n = write(out_fd, line + done, len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* tracing must never stop the daemon: drop the line */
            return;
        }
        done += (size_t)n;
    }
}

static int compare_names(gconstpointer a, gconstpointer b)
{
    const BdTracePoint *x = *(BdTracePoint *const *)a;
    const BdTracePoint *y = *(BdTracePoint *const *)b;

    return strcmp(x->name, y->name);
}

void bd_trace_list(FILE *out)
{
    g_autoptr(GPtrArray) sorted = g_ptr_array_new();

    for (guint i = 0; points && i < points->len; i++) {
        g_ptr_array_add(sorted, points->pdata[i]);
    }
    g_ptr_array_sort(sorted, compare_names);
    for (guint i = 0; i < sorted->len; i++) {
        fprintf(out, "%s\n", ((BdTracePoint *)sorted->pdata[i])->name);
    }
}

void bd_trace_reset(void)
{
    g_clear_pointer(&patterns, g_ptr_array_unref);
    for (guint i = 0; points && i < points->len; i++) {
        ((BdTracePoint *)points->pdata[i])->enabled = 0;
    }
    bd_trace_set_output(NULL, NULL);
}
