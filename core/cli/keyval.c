/*
 * QEMU's keyval syntax: key=value,... with dotted keys and list indices.
 *
 * Parsing happens in two passes, as the grammar needs: the first builds
 * a tree of objects whose leaves are strings, creating objects on demand
 * for every dotted key; only when every element has been seen can we
 * tell which objects are really lists (all their keys are indices), so a
 * second pass turns those into arrays and checks their indices.
 */
#include <limits.h>
#include <string.h>

#include <blockd/error.h>

#include "cli/keyval.h"

static bool is_help_word(const char *s, size_t len)
{
    return (len == 4 && strncmp(s, "help", 4) == 0) ||
           (len == 1 && s[0] == '?');
}

/*
 * Length of the QAPI name at the start of @s (0 if there is none): an
 * optional downstream prefix "__RFQDN_", then a letter, then letters,
 * digits, '-' and '_'.  Note the prefix may contain '.', so such a name
 * swallows dots that would otherwise separate key fragments.
 */
static size_t qapi_name_len(const char *s)
{
    const char *p = s;

    if (*p == '_') {
        p++;
        if (*p != '_') {
            return 0;
        }
        for (p++; g_ascii_isalnum(*p) || *p == '-' || *p == '.'; p++) {
            /* the reverse domain name */
        }
        if (*p != '_') {
            return 0;
        }
        p++;
    }
    if (!g_ascii_isalpha(*p)) {
        return 0;
    }
    for (p++; g_ascii_isalnum(*p) || *p == '-' || *p == '_'; p++) {
        /* the rest of the name */
    }
    return p - s;
}

static size_t index_len(const char *s)
{
    size_t n = 0;

    while (g_ascii_isdigit(s[n])) {
        n++;
    }
    return n;
}

/*
 * The list index a key stands for, or -1 if it is not all digits.
 * Huge indices saturate at INT_MAX: they can never be valid anyway.
 */
static int key_index(const char *key)
{
    size_t n = index_len(key);
    guint64 v = 0;
    size_t i;

    if (n == 0 || key[n]) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        v = v * 10 + (key[i] - '0');
        if (v > INT_MAX) {
            return INT_MAX;
        }
    }
    return v;
}

static void set_error(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void set_error(GError **errp, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    bd_error_setg(errp, "%s", msg);
    g_free(msg);
}

/*
 * Make @name in @cur an object (when @value is NULL) or the string
 * @value, replacing an earlier string.  Anything else means the key is
 * used both as a scalar and as an object; @key_len chars of @key name it.
 * Returns the object for @name (or @cur for a string), NULL on error.
 */
static JsonObject *put_member(JsonObject *cur, const char *name,
                              const char *value, const char *key,
                              size_t key_len, GError **errp)
{
    JsonNode *old = json_object_get_member(cur, name);

    if (old) {
        bool old_is_object = JSON_NODE_HOLDS_OBJECT(old);

        if (old_is_object != (value == NULL)) {
            set_error(errp, "Parameters '%.*s.*' used inconsistently",
                      (int)key_len, key);
            return NULL;
        }
        if (old_is_object) {
            return json_node_get_object(old);
        }
    }
    if (value) {
        json_object_set_string_member(cur, name, value);
        return cur;
    }
    json_object_set_object_member(cur, name, json_object_new());
    return json_object_get_object_member(cur, name);
}

/*
 * Parse the element at @params into @root.  Returns where the next
 * element starts (or the terminating NUL), NULL on error.
 */
static const char *parse_element(JsonObject *root, const char *params,
                                 const char *implied_key, bool *help,
                                 GError **errp)
{
    size_t len = strcspn(params, "=,");
    const char *key, *key_end, *s;
    JsonObject *cur = root;
    char *name = NULL;
    GString *val;

    if (len && params[len] != '=') {
        if (is_help_word(params, len)) {
            *help = true;
            s = params + len;
            return *s ? s + 1 : s;
        }
        if (implied_key) {
            /* The value of the implied key: no escaping, no '=' */
            s = params + len;
            name = g_strndup(params, len);
            json_object_set_string_member(root, implied_key, name);
            g_free(name);
            return *s ? s + 1 : s;
        }
    }

    key = params;
    key_end = key + len;
    s = key;
    for (;;) {
        size_t flen;

        if (s != key && g_ascii_isdigit(*s)) {
            flen = index_len(s);
        } else {
            flen = qapi_name_len(s);
        }
        if (!flen || (s + flen < key_end && s[flen] != '.')) {
            set_error(errp, "Invalid parameter '%.*s'",
                      (int)(key_end - key), key);
            goto fail;
        }
        if (flen > BD_KEYVAL_FRAGMENT_MAX) {
            set_error(errp, "Parameter%s '%.*s' is too long",
                      s != key || s + flen != key_end ? " fragment" : "",
                      (int)flen, s);
            goto fail;
        }
        if (name) {
            /* The previous fragment names an object holding this one */
            cur = put_member(cur, name, NULL, key, s - 1 - key, errp);
            if (!cur) {
                goto fail;
            }
            g_free(name);
        }
        name = g_strndup(s, flen);
        s += flen;
        if (*s != '.') {
            break;
        }
        s++;
    }

    if (*s != '=') {
        set_error(errp, "Expected '=' after parameter '%.*s'",
                  (int)(s - key), key);
        goto fail;
    }
    s++;

    val = g_string_new(NULL);
    while (*s) {
        if (*s == ',') {
            s++;
            if (*s != ',') {
                break;
            }
        }
        g_string_append_c(val, *s++);
    }
    cur = put_member(cur, name, val->str, key, key_end - key, errp);
    g_string_free(val, TRUE);
    if (!cur) {
        goto fail;
    }
    g_free(name);
    return s;

fail:
    g_free(name);
    return NULL;
}

/* The key path of a nested object as "a.b.", for messages. */
static char *path_prefix(GPtrArray *path)
{
    GString *s = g_string_new(NULL);
    guint i;

    for (i = 0; i < path->len; i++) {
        g_string_append(s, g_ptr_array_index(path, i));
        g_string_append_c(s, '.');
    }
    return g_string_free(s, FALSE);
}

static char **member_names(JsonObject *obj)
{
    GList *names = json_object_get_members(obj);
    char **v = g_new0(char *, g_list_length(names) + 1);
    GList *l;
    int i = 0;

    for (l = names; l; l = l->next) {
        v[i++] = g_strdup(l->data);
    }
    g_list_free(names);
    return v;
}

/*
 * Turn the objects below @obj (whose key path is @path) whose keys are
 * all indices into arrays, innermost first.  If @obj itself is such an
 * object, store its array in *@array (else leave it NULL).
 */
static bool listify(JsonObject *obj, GPtrArray *path, JsonArray **array,
                    GError **errp)
{
    g_auto(GStrv) names = member_names(obj);
    bool has_index = false, has_member = false;
    JsonNode **elt;
    guint n = g_strv_length(names);
    int max_index = -1;
    guint i, count;

    *array = NULL;
    for (i = 0; names[i]; i++) {
        JsonNode *node = json_object_get_member(obj, names[i]);
        JsonArray *sub;
        bool ok;

        if (key_index(names[i]) >= 0) {
            has_index = true;
        } else {
            has_member = true;
        }
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            continue;
        }
        g_ptr_array_add(path, names[i]);
        ok = listify(json_node_get_object(node), path, &sub, errp);
        g_ptr_array_set_size(path, path->len - 1);
        if (!ok) {
            return false;
        }
        if (sub) {
            json_object_set_array_member(obj, names[i], sub);
        }
    }

    if (has_index && has_member) {
        g_autofree char *prefix = path_prefix(path);

        set_error(errp, "Parameters '%s*' used inconsistently", prefix);
        return false;
    }
    if (!has_index) {
        return true;
    }

    /*
     * Indices may repeat ("0" and "00"); then the later key wins and the
     * list is shorter than the object.  Any index >= n means a gap.
     */
    elt = g_new0(JsonNode *, n + 1);
    for (i = 0; names[i]; i++) {
        int idx = key_index(names[i]);

        if (idx > max_index) {
            max_index = idx;
        }
        if ((guint)idx < n) {
            elt[idx] = json_object_get_member(obj, names[i]);
        }
    }
    count = MIN(n + 1, (guint)max_index + 1);
    for (i = 0; i < count; i++) {
        if (!elt[i]) {
            g_autofree char *prefix = path_prefix(path);

            set_error(errp, "Parameter '%s%u' missing", prefix, i);
            g_free(elt);
            return false;
        }
    }
    *array = json_array_sized_new(count);
    for (i = 0; i < count; i++) {
        json_array_add_element(*array, json_node_copy(elt[i]));
    }
    g_free(elt);
    return true;
}

JsonObject *bd_keyval_parse(const char *params, const char *implied_key,
                            bool *help, GError **errp)
{
    JsonObject *root = json_object_new();
    bool help_wanted = false;
    const char *s = params;
    g_autoptr(GPtrArray) path = g_ptr_array_new();
    JsonArray *array;

    while (*s) {
        s = parse_element(root, s, implied_key, &help_wanted, errp);
        if (!s) {
            goto fail;
        }
        implied_key = NULL;
    }

    if (help) {
        *help = help_wanted;
    } else if (help_wanted) {
        set_error(errp, "Help is not available for this option");
        goto fail;
    }

    /* The root's first fragment is never an index, so it stays an object */
    if (!listify(root, path, &array, errp)) {
        goto fail;
    }
    g_assert(!array);
    return root;

fail:
    json_object_unref(root);
    return NULL;
}
