/*
 * Coercion of command-line (keyval) strings to the schema's scalar types,
 * accepting what QEMU's keyval input visitor accepts and failing with its
 * messages ("Parameter 'size' expects integer", "... expects 'on' or
 * 'off'", "... expects size").
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <blockd/error.h>

#include "json/json-uint64.h"
#include "schema/schema-int.h"

/* Whole-string strtoll/strtoull with base prefixes (0x, 0), as QEMU's
 * qemu_strtoi64()/qemu_strtou64() with base 0. */
static bool parse_i64(const char *str, gint64 *out)
{
    char *end;

    if (!*str) {
        return false;
    }
    errno = 0;
    *out = strtoll(str, &end, 0);
    return errno == 0 && end != str && *end == '\0';
}

static bool parse_u64(const char *str, guint64 *out)
{
    char *end;

    if (!*str) {
        return false;
    }
    errno = 0;
    /* Like strtoull, a leading '-' is accepted and negates the value. */
    *out = strtoull(str, &end, 0);
    return errno == 0 && end != str && *end == '\0';
}

static bool parse_double(const char *str, double *out)
{
    char *end;

    if (!*str) {
        return false;
    }
    errno = 0;
    *out = strtod(str, &end);
    return errno == 0 && end != str && *end == '\0' && isfinite(*out);
}

/* Multiplier of a size suffix letter, or 0 if @c is none. */
static guint64 suffix_mul(char c)
{
    switch (g_ascii_toupper(c)) {
    case 'B':
        return 1;
    case 'K':
        return 1ULL << 10;
    case 'M':
        return 1ULL << 20;
    case 'G':
        return 1ULL << 30;
    case 'T':
        return 1ULL << 40;
    case 'P':
        return 1ULL << 50;
    case 'E':
        return 1ULL << 60;
    }
    return 0;
}

/*
 * Sizes: a decimal integer, optionally with a fraction, or a hex integer
 * (no fraction, no suffix), then an optional suffix B/k/M/G/T/P/E (powers
 * of 1024, any case; bytes by default).  A fraction needs a suffix other
 * than B, an exponent is refused, and results are rounded half up.
 */
bool bd_schema_parse_size(const char *str, guint64 *result)
{
    const char *p;
    char *end;
    guint64 val, mul;
    double frac = 0;
    unsigned __int128 total;

    if (!*str) {
        return false;
    }
    errno = 0;
    val = strtoull(str, &end, 10);
    if (errno || end == str || memchr(str, '-', end - str)) {
        return false;
    }
    p = end;
    if (val == 0 && (*p == 'x' || *p == 'X')) {
        errno = 0;
        val = strtoull(str, &end, 16);
        if (errno || *end == '.' || suffix_mul(*end)) {
            return false;
        }
        p = end;
    } else if (*p == '.') {
        const char *f = p;
        char *fend;

        errno = 0;
        frac = strtod(f, &fend);
        if (errno || fend == f || !isfinite(frac)) {
            /* "1." alone still counts as a fraction of zero */
            p = f + 1;
            frac = 0;
        } else if (memchr(f, 'e', fend - f) || memchr(f, 'E', fend - f)) {
            return false;
        } else {
            p = fend;
        }
    }
    mul = suffix_mul(*p);
    if (mul) {
        p++;
    } else {
        mul = 1;
    }
    if (*p) {
        return false;
    }
    if (mul == 1) {
        if (frac != 0) {
            return false;
        }
        *result = val;
        return true;
    }
    /* Exact 64.64 fixed-point product, rounded half up. */
    {
        guint64 valf = (guint64)(frac * 0x1p64);
        unsigned __int128 fpart = (unsigned __int128)valf * mul;

        total = (unsigned __int128)val * mul + (fpart >> 64) +
                ((fpart >> 63) & 1);
    }
    if (total >> 64) {
        return false;
    }
    *result = (guint64)total;
    return true;
}

static bool parse_bool(const char *str, bool *out)
{
    static const char *const on[] = { "on", "yes", "true", "y" };
    static const char *const off[] = { "off", "no", "false", "n" };

    for (size_t i = 0; i < G_N_ELEMENTS(on); i++) {
        if (!strcmp(str, on[i])) {
            *out = true;
            return true;
        }
        if (!strcmp(str, off[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

JsonNode *bd_schema_keyval_scalar(BdSchemaBuiltin b, const char *str,
                                  const char *full, GError **errp)
{
    JsonNode *out = json_node_new(JSON_NODE_VALUE);
    const char *expects = NULL;
    gint64 i;
    guint64 u;
    double d;
    bool flag;

    switch (b) {
    case BD_BUILTIN_STR:
        json_node_set_string(out, str);
        break;
    case BD_BUILTIN_BOOL:
        if (parse_bool(str, &flag)) {
            json_node_set_boolean(out, flag);
        } else {
            expects = "'on' or 'off'";
        }
        break;
    case BD_BUILTIN_NUMBER:
        if (parse_double(str, &d)) {
            json_node_set_double(out, d);
        } else {
            expects = "number";
        }
        break;
    case BD_BUILTIN_SIZE:
        if (bd_schema_parse_size(str, &u)) {
            json_node_unref(out);
            out = bd_json_node_new_uint64(u);
        } else {
            expects = "size";
        }
        break;
    case BD_BUILTIN_UINT8:
    case BD_BUILTIN_UINT16:
    case BD_BUILTIN_UINT32:
    case BD_BUILTIN_UINT64:
        if (parse_u64(str, &u)) {
            json_node_unref(out);
            out = bd_json_node_new_uint64(u);
        } else {
            expects = "integer";
        }
        break;
    default:
        if (parse_i64(str, &i)) {
            json_node_set_int(out, i);
        } else {
            expects = "integer";
        }
        break;
    }
    if (expects) {
        json_node_unref(out);
        bd_error_setg(errp, "Parameter '%s' expects %s", full, expects);
        return NULL;
    }
    return out;
}
