/*
 * QEMU's older QemuOpts syntax, which --chardev still uses.
 *
 * Unlike keyval it is flat, knows short-form booleans ("server",
 * "nowait"), lets the implied first value use ",," escaping, and treats
 * "id" specially: QemuOpts picks the id in a separate scan in which the
 * first element is not the implied value, so we do the same two scans to
 * agree with it on odd input such as "null,,id=x" or "null,noid".
 */
#include <string.h>

#include <blockd/error.h>

#include "cli/keyval.h"
#include "util/id.h"

typedef struct OptElement {
    char *name;
    char *value;
    bool is_flag;           /* short form, without '=' */
    bool negated;           /* short form "noNAME" */
} OptElement;

static void opt_element_clear(OptElement *e)
{
    g_free(e->name);
    g_free(e->value);
    memset(e, 0, sizeof(*e));
}

/* Copy a value up to the first single ',' undoing ",,"; return its end. */
static const char *read_value(const char *s, char **value)
{
    GString *v = g_string_new(NULL);

    while (*s) {
        if (*s == ',') {
            if (s[1] != ',') {
                break;
            }
            s++;
        }
        g_string_append_c(v, *s++);
    }
    *value = g_string_free(v, FALSE);
    return s;
}

/*
 * Read the element at @s into @e.  @implied_name, if not NULL, names
 * the value of an element without '='.  Returns where the next element
 * starts.
 */
static const char *read_element(const char *s, const char *implied_name,
                                OptElement *e)
{
    size_t len = strcspn(s, "=,");

    memset(e, 0, sizeof(*e));
    if (s[len] == '=') {
        e->name = g_strndup(s, len);
        s = read_value(s + len + 1, &e->value);
    } else if (implied_name) {
        e->name = g_strdup(implied_name);
        s = read_value(s, &e->value);
    } else {
        e->is_flag = true;
        if (strncmp(s, "no", 2) == 0) {
            e->name = g_strndup(s + 2, len - 2);
            e->value = g_strdup("off");
            e->negated = true;
        } else {
            e->name = g_strndup(s, len);
            e->value = g_strdup("on");
        }
        s += len;
    }
    return *s == ',' ? s + 1 : s;
}

static bool is_help_name(const char *name)
{
    return strcmp(name, "help") == 0 || strcmp(name, "?") == 0;
}

static char *find_id(const char *params)
{
    const char *s = params;
    OptElement e;

    while (*s) {
        s = read_element(s, NULL, &e);
        if (strcmp(e.name, "id") == 0) {
            char *id = e.value;

            e.value = NULL;
            opt_element_clear(&e);
            return id;
        }
        opt_element_clear(&e);
    }
    return NULL;
}

static char *flag_warning(const OptElement *e)
{
    const char *prefix = e->negated ? "no" : "";

    /* "delay" is the one option whose preferred spelling is negated */
    if (strcmp(e->name, "delay") == 0) {
        return g_strdup_printf("short-form boolean option '%s%s' deprecated\n"
                               "Please use nodelay=%s instead",
                               prefix, e->name, e->negated ? "on" : "off");
    }
    return g_strdup_printf("short-form boolean option '%s%s' deprecated\n"
                           "Please use %s=%s instead",
                           prefix, e->name, e->name, e->value);
}

JsonObject *bd_qemu_opts_parse_full(const char *params,
                                    const char *implied_key, bool *help,
                                    GPtrArray *warnings, GError **errp)
{
    g_autofree char *id = find_id(params);
    JsonObject *obj;
    const char *s = params;

    if (help) {
        *help = false;
    }
    if (id && !bd_id_wellformed(id)) {
        bd_error_setg(errp, "Parameter 'id' expects an identifier\n"
                      "Identifiers consist of letters, digits, "
                      "'-', '.', '_', starting with a letter.");
        return NULL;
    }

    obj = json_object_new();
    if (id) {
        json_object_set_string_member(obj, "id", id);
    }
    while (*s) {
        OptElement e;

        s = read_element(s, implied_key, &e);
        implied_key = NULL;
        if (e.is_flag && !e.negated && is_help_name(e.name) && help) {
            *help = true;
            opt_element_clear(&e);
            break;
        }
        if (e.is_flag && warnings && (e.negated || !is_help_name(e.name))) {
            g_ptr_array_add(warnings, flag_warning(&e));
        }
        if (strcmp(e.name, "id") != 0) {
            json_object_set_string_member(obj, e.name, e.value);
        }
        opt_element_clear(&e);
    }
    return obj;
}

JsonObject *bd_qemu_opts_parse(const char *params, const char *implied_key,
                               GError **errp)
{
    return bd_qemu_opts_parse_full(params, implied_key, NULL, NULL, errp);
}
