/*
 * Identifiers (see id.h).
 */
#include <string.h>

#include <glib.h>

#include "util/id.h"

bool bd_id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

char *bd_id_generate(const char *prefix, uint64_t *counter)
{
    return g_strdup_printf("#%s%" G_GUINT64_FORMAT "%02d", prefix,
                           (guint64)(*counter)++,
                           g_random_int_range(0, 100));
}
