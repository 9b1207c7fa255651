/*
 * Validation of values against the schema, written to give exactly the
 * error messages of QEMU 7.2's QObject input visitor (the code behind
 * every QMP command's argument checking and, in keyval mode, behind
 * --blockdev and friends):
 *
 * - members are visited in schema order (base first, then own members,
 *   then a union's branch), so the first problem in that order is
 *   reported;
 * - most messages name the member by its full path ("file.filename",
 *   "children[0].driver", "inject-error.0.errno" in keyval mode), but
 *   enum values, alternates and the ranges of the small integer types
 *   use only the member's own name, and "null" inside a list;
 * - left-over members are reported after all others were visited, and
 *   which one is reported first follows QEMU's dictionary and glib hash
 *   table orders, which this file reproduces.
 */
#include <string.h>

#include <blockd/error.h>

#include "json/json-uint64.h"
#include "json/qdict-order.h"
#include "schema/schema-int.h"

/* QMP_... */
#define MSG_MISSING "Parameter '%s' is missing"
#define MSG_TYPE "Invalid parameter type for '%s', expected: %s"
#define MSG_VALUE "Parameter '%s' expects %s"
#define MSG_ENUM "Parameter '%s' does not accept value '%s'"
#define MSG_UNEXPECTED "Parameter '%s' is unexpected"

typedef struct Frame {
    const char *name;       /* how the container was reached, or NULL */
    bool is_list;
    guint index;            /* lists: the element being visited */
    GHashTable *unvisited;  /* objects: member names not yet visited */
    JsonObject *obj;
} Frame;

typedef struct Visit {
    bool keyval;
    GPtrArray *stack;       /* of Frame *, innermost last */
    GString *path;
    GError **errp;
} Visit;

/* The member's path as QEMU's full_name() spells it. */
static const char *full_name(Visit *v, const char *name)
{
    GString *s = v->path;

    g_string_truncate(s, 0);
    for (guint i = v->stack->len; i-- > 0;) {
        Frame *f = v->stack->pdata[i];
        if (!f->is_list) {
            g_string_prepend(s, name ? name : "<anonymous>");
            g_string_prepend_c(s, '.');
        } else {
            char buf[32];
            g_snprintf(buf, sizeof(buf), v->keyval ? ".%u" : "[%u]",
                       f->index);
            g_string_prepend(s, buf);
        }
        name = f->name;
    }
    if (name) {
        g_string_prepend(s, name);
    } else if (s->str[0] == '.') {
        g_string_erase(s, 0, 1);
    } else if (!s->str[0]) {
        return "<anonymous>";
    }
    return s->str;
}

static const char *leaf_name(const char *name)
{
    return name ? name : "null";
}

G_GNUC_PRINTF(2, 3)
static JsonNode *fail(Visit *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (v->errp && !*v->errp) {
        *v->errp = g_error_new_valist(BD_ERROR, BD_ERROR_GENERIC, fmt, ap);
    }
    va_end(ap);
    return NULL;
}

/* The table of unvisited members, filled in QEMU's order so that glib
 * iterates it like QEMU's does. */
static GHashTable *unvisited_table(JsonObject *obj)
{
    g_autoptr(GList) order = bd_qdict_member_order(obj);
    GHashTable *h = g_hash_table_new(g_str_hash, g_str_equal);

    for (GList *l = order; l; l = l->next) {
        g_hash_table_insert(h, l->data, NULL);
    }
    return h;
}

static Frame *push(Visit *v, const char *name, JsonNode *node)
{
    Frame *f = g_new0(Frame, 1);

    f->name = name;
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        f->obj = json_node_get_object(node);
        f->unvisited = unvisited_table(f->obj);
    } else {
        f->is_list = true;
    }
    g_ptr_array_add(v->stack, f);
    return f;
}

static void pop(Visit *v)
{
    Frame *f = g_ptr_array_steal_index(v->stack, v->stack->len - 1);

    if (f->unvisited) {
        g_hash_table_destroy(f->unvisited);
    }
    g_free(f);
}

static void frame_free(gpointer p)
{
    Frame *f = p;

    if (f->unvisited) {
        g_hash_table_destroy(f->unvisited);
    }
    g_free(f);
}

/* The member @name of the innermost object (NULL if absent); consuming
 * it marks it visited. */
static JsonNode *member(Visit *v, const char *name, bool consume)
{
    Frame *f = v->stack->pdata[v->stack->len - 1];
    JsonNode *n = json_object_get_member(f->obj, name);

    if (n && consume) {
        g_hash_table_remove(f->unvisited, name);
    }
    return n;
}

static JsonNode *visit_type(Visit *v, const char *name, JsonNode *node,
                            BdSchemaType *type);

static bool node_is(JsonNode *n, GType t)
{
    return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == t;
}

static const struct {
    const char *cname;
    gint64 min;
    guint64 max;
} int_ranges[] = {
    [BD_BUILTIN_INT8] = { "int8_t", G_MININT8, G_MAXINT8 },
    [BD_BUILTIN_INT16] = { "int16_t", G_MININT16, G_MAXINT16 },
    [BD_BUILTIN_INT32] = { "int32_t", G_MININT32, G_MAXINT32 },
    [BD_BUILTIN_UINT8] = { "uint8_t", 0, G_MAXUINT8 },
    [BD_BUILTIN_UINT16] = { "uint16_t", 0, G_MAXUINT16 },
    [BD_BUILTIN_UINT32] = { "uint32_t", 0, G_MAXUINT32 },
};

static bool is_unsigned(BdSchemaBuiltin b)
{
    return b >= BD_BUILTIN_UINT8 && b <= BD_BUILTIN_SIZE;
}

/* In keyval mode scalars are strings; anything else is refused the way
 * QEMU's qobject_input_get_keyval() does. */
static const char *keyval_string(Visit *v, const char *name, JsonNode *node)
{
    if (JSON_NODE_HOLDS_OBJECT(node) || JSON_NODE_HOLDS_ARRAY(node)) {
        fail(v, "Parameters '%s.*' are unexpected", full_name(v, name));
        return NULL;
    }
    if (!node_is(node, G_TYPE_STRING)) {
        fail(v, MSG_TYPE, full_name(v, name), "string");
        return NULL;
    }
    return json_node_get_string(node);
}

static JsonNode *visit_builtin(Visit *v, const char *name, JsonNode *node,
                               BdSchemaBuiltin b)
{
    JsonNode *out;

    if (b == BD_BUILTIN_ANY) {
        return json_node_copy(node);
    }
    if (b == BD_BUILTIN_NULL) {
        if (!JSON_NODE_HOLDS_NULL(node)) {
            return fail(v, MSG_TYPE, full_name(v, name), "null");
        }
        return json_node_new(JSON_NODE_NULL);
    }
    if (v->keyval) {
        const char *str = keyval_string(v, name, node);
        if (!str) {
            return NULL;
        }
        out = bd_schema_keyval_scalar(b, str, full_name(v, name), v->errp);
        if (!out) {
            return NULL;
        }
    } else {
        switch (b) {
        case BD_BUILTIN_STR:
            if (!node_is(node, G_TYPE_STRING)) {
                return fail(v, MSG_TYPE, full_name(v, name), "string");
            }
            break;
        case BD_BUILTIN_BOOL:
            if (!node_is(node, G_TYPE_BOOLEAN)) {
                return fail(v, MSG_TYPE, full_name(v, name), "boolean");
            }
            break;
        case BD_BUILTIN_NUMBER:
            if (!node_is(node, G_TYPE_INT64) &&
                !node_is(node, G_TYPE_DOUBLE)) {
                return fail(v, MSG_TYPE, full_name(v, name), "number");
            }
            out = json_node_new(JSON_NODE_VALUE);
            json_node_set_double(out, bd_json_node_is_big_uint64(node) ?
                                 (double)(guint64)json_node_get_int(node) :
                                 json_node_get_double(node));
            return out;
        default:
            /* Unsigned types take negative numbers too (as QEMU does,
             * for compatibility), wrapping them around. */
            if (!node_is(node, G_TYPE_INT64)) {
                if (is_unsigned(b)) {
                    return fail(v, MSG_VALUE, full_name(v, name), "uint64");
                }
                return fail(v, MSG_TYPE, full_name(v, name), "integer");
            }
            /* above INT64_MAX: a uint64 only (its copy stays one) */
            if (!is_unsigned(b) && bd_json_node_is_big_uint64(node)) {
                return fail(v, MSG_TYPE, full_name(v, name), "integer");
            }
            break;
        }
        out = json_node_copy(node);
    }
    if (b >= BD_BUILTIN_INT8 && b <= BD_BUILTIN_UINT32 &&
        b != BD_BUILTIN_INT64) {
        gint64 i = json_node_get_int(out);
        bool ok = is_unsigned(b) ? (guint64)i <= int_ranges[b].max
                                 : i >= int_ranges[b].min &&
                                   i <= (gint64)int_ranges[b].max;
        if (!ok) {
            json_node_unref(out);
            return fail(v, MSG_VALUE, leaf_name(name), int_ranges[b].cname);
        }
    }
    return out;
}

static JsonNode *visit_enum(Visit *v, const char *name, JsonNode *node,
                            BdSchemaType *type)
{
    const char *str;

    if (v->keyval) {
        str = keyval_string(v, name, node);
        if (!str) {
            return NULL;
        }
    } else if (!node_is(node, G_TYPE_STRING)) {
        return fail(v, MSG_TYPE, full_name(v, name), "string");
    } else {
        str = json_node_get_string(node);
    }
    if (!bd_schema_enum_has(type, str)) {
        return fail(v, MSG_ENUM, leaf_name(name), str);
    }
    return json_node_init_string(json_node_alloc(), str);
}

/* Visit @members of the innermost object into @out. */
static bool visit_members(Visit *v, GPtrArray *members, JsonObject *out)
{
    for (guint i = 0; i < members->len; i++) {
        BdSchemaMember *m = members->pdata[i];
        JsonNode *n = member(v, m->name, false);
        JsonNode *r;

        if (!n) {
            if (m->optional) {
                continue;
            }
            fail(v, MSG_MISSING, full_name(v, m->name));
            return false;
        }
        r = visit_type(v, m->name, n, bd_schema_lookup_type(m->type));
        if (!r) {
            return false;
        }
        member(v, m->name, true);
        json_object_set_member(out, m->name, r);
    }
    return true;
}

static JsonNode *visit_object(Visit *v, const char *name, JsonNode *node,
                              BdSchemaType *type)
{
    g_autoptr(JsonObject) out = json_object_new();
    g_autoptr(GPtrArray) members = NULL;
    Frame *f;
    bool ok;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        return fail(v, MSG_TYPE, full_name(v, name), "object");
    }
    f = push(v, name, node);
    members = bd_schema_object_members(type);
    ok = visit_members(v, members, out);
    if (ok && type->kind == BD_SCHEMA_UNION) {
        JsonNode *tag = json_object_get_member(out, type->tag);
        const char *branch = bd_schema_union_branch(
            type, json_node_get_string(tag));
        if (branch) {
            g_autoptr(GPtrArray) more =
                bd_schema_object_members(bd_schema_lookup_type(branch));
            ok = visit_members(v, more, out);
        }
    }
    if (ok) {
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, f->unvisited);
        if (g_hash_table_iter_next(&it, &key, NULL)) {
            fail(v, MSG_UNEXPECTED, full_name(v, key));
            ok = false;
        }
    }
    pop(v);
    if (!ok) {
        return NULL;
    }
    return json_node_init_object(json_node_alloc(), out);
}

static JsonNode *visit_list(Visit *v, const char *name, JsonNode *node,
                            BdSchemaType *type)
{
    g_autoptr(JsonArray) out = json_array_new();
    BdSchemaType *elem = bd_schema_lookup_type(type->element);
    JsonArray *in;
    Frame *f;

    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        return fail(v, MSG_TYPE, full_name(v, name), "array");
    }
    in = json_node_get_array(node);
    f = push(v, name, node);
    for (guint i = 0; i < json_array_get_length(in); i++) {
        JsonNode *r;

        f->index = i;
        r = visit_type(v, NULL, json_array_get_element(in, i), elem);
        if (!r) {
            pop(v);
            return NULL;
        }
        json_array_add_element(out, r);
    }
    pop(v);
    return json_node_init_array(json_node_alloc(), out);
}

/* Which branch of an alternate takes @node: QEMU decides by the JSON type
 * alone (in keyval mode every scalar is a string). */
static BdSchemaType *alternate_branch(BdSchemaType *type, JsonNode *node)
{
    for (guint i = 0; i < type->members->len; i++) {
        BdSchemaMember *m = type->members->pdata[i];
        BdSchemaType *t = bd_schema_lookup_type(m->type);
        bool match;

        switch (t->kind) {
        case BD_SCHEMA_STRUCT:
        case BD_SCHEMA_UNION:
            match = JSON_NODE_HOLDS_OBJECT(node);
            break;
        case BD_SCHEMA_ENUM:
            match = node_is(node, G_TYPE_STRING);
            break;
        case BD_SCHEMA_ARRAY:
            match = JSON_NODE_HOLDS_ARRAY(node);
            break;
        case BD_SCHEMA_BUILTIN:
            switch (t->builtin) {
            case BD_BUILTIN_STR:
                match = node_is(node, G_TYPE_STRING);
                break;
            case BD_BUILTIN_BOOL:
                match = node_is(node, G_TYPE_BOOLEAN);
                break;
            case BD_BUILTIN_NULL:
                match = JSON_NODE_HOLDS_NULL(node);
                break;
            default:
                match = bd_schema_builtin_is_int(t->builtin) ||
                        t->builtin == BD_BUILTIN_NUMBER ?
                        node_is(node, G_TYPE_INT64) ||
                        node_is(node, G_TYPE_DOUBLE) : false;
                break;
            }
            break;
        default:
            match = false;
            break;
        }
        if (match) {
            return t;
        }
    }
    return NULL;
}

static JsonNode *visit_type(Visit *v, const char *name, JsonNode *node,
                            BdSchemaType *type)
{
    BdSchemaType *branch;

    switch (type->kind) {
    case BD_SCHEMA_BUILTIN:
        return visit_builtin(v, name, node, type->builtin);
    case BD_SCHEMA_ENUM:
        return visit_enum(v, name, node, type);
    case BD_SCHEMA_STRUCT:
    case BD_SCHEMA_UNION:
        return visit_object(v, name, node, type);
    case BD_SCHEMA_ARRAY:
        return visit_list(v, name, node, type);
    case BD_SCHEMA_ALTERNATE:
        branch = alternate_branch(type, node);
        if (!branch) {
            return fail(v, MSG_TYPE, leaf_name(name), type->name);
        }
        return visit_type(v, name, node, branch);
    }
    g_assert_not_reached();
}

static void visit_init(Visit *v, bool keyval, GError **errp)
{
    v->keyval = keyval;
    v->stack = g_ptr_array_new_with_free_func(frame_free);
    v->path = g_string_new(NULL);
    v->errp = errp;
}

static void visit_cleanup(Visit *v)
{
    g_ptr_array_unref(v->stack);
    g_string_free(v->path, TRUE);
}

JsonNode *bd_schema_check_type(const char *type_name, JsonNode *value,
                               bool keyval, GError **errp)
{
    BdSchemaType *type = bd_schema_lookup_type(type_name);
    Visit v;
    JsonNode *out;

    if (!type) {
        bd_error_setg(errp, "Unknown schema type '%s'", type_name);
        return NULL;
    }
    visit_init(&v, keyval, errp);
    out = visit_type(&v, NULL, value, type);
    visit_cleanup(&v);
    return out;
}

bool bd_schema_check_command_args(const char *command, JsonObject *args,
                                  JsonObject **out, GError **errp)
{
    BdSchemaRegistry *r = bd_schema_registry();
    BdSchemaCommand *c = g_hash_table_lookup(r->entities, command);
    g_autoptr(JsonObject) empty = NULL;
    g_autoptr(JsonNode) root = NULL;
    JsonNode *res;
    Visit v;

    if (!c || c->is_event) {
        g_set_error(errp, BD_ERROR, BD_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", command);
        return false;
    }
    if (!args) {
        args = empty = json_object_new();
    }
    root = json_node_init_object(json_node_alloc(), args);
    visit_init(&v, false, errp);
    if (c->arg_type) {
        res = visit_type(&v, NULL, root, bd_schema_lookup_type(c->arg_type));
    } else {
        /* No arguments: an object without members. */
        BdSchemaType none = { .kind = BD_SCHEMA_STRUCT };
        none.members = g_ptr_array_new();
        res = visit_object(&v, NULL, root, &none);
        g_ptr_array_unref(none.members);
    }
    visit_cleanup(&v);
    if (!res) {
        return false;
    }
    *out = json_object_ref(json_node_get_object(res));
    json_node_unref(res);
    return true;
}
