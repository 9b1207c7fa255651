/*
 * The schema registry: reads the embedded (canonical JSON) schemas of the
 * core and the plugins into types, commands and events, applies blockd's
 * 'extend-enum' / 'extend-union' expressions, and undoes a whole schema
 * when any part of it fails so that a bad plugin never leaves half of
 * itself behind.
 */
#include <string.h>

#include <blockd/error.h>

#include "schema/schema-int.h"

static BdSchemaRegistry *registry;

static const struct {
    const char *name;
    BdSchemaBuiltin builtin;
} builtins[] = {
    { "str", BD_BUILTIN_STR },       { "number", BD_BUILTIN_NUMBER },
    { "int", BD_BUILTIN_INT },       { "int8", BD_BUILTIN_INT8 },
    { "int16", BD_BUILTIN_INT16 },   { "int32", BD_BUILTIN_INT32 },
    { "int64", BD_BUILTIN_INT64 },   { "uint8", BD_BUILTIN_UINT8 },
    { "uint16", BD_BUILTIN_UINT16 }, { "uint32", BD_BUILTIN_UINT32 },
    { "uint64", BD_BUILTIN_UINT64 }, { "size", BD_BUILTIN_SIZE },
    { "bool", BD_BUILTIN_BOOL },     { "null", BD_BUILTIN_NULL },
    { "any", BD_BUILTIN_ANY },
};

static const char *const qtype_values[] = {
    "none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool",
};

static void member_free(gpointer p)
{
    BdSchemaMember *m = p;

    g_free(m->name);
    g_free(m->type);
    g_strfreev(m->features);
    g_free(m);
}

static BdSchemaMember *member_new(const char *name, const char *type,
                                  const char *origin)
{
    BdSchemaMember *m = g_new0(BdSchemaMember, 1);

    m->name = g_strdup(name);
    m->type = g_strdup(type);
    m->origin = origin;
    return m;
}

static void type_free(gpointer p)
{
    BdSchemaType *t = p;

    g_free(t->name);
    g_free(t->base);
    g_free(t->tag);
    g_free(t->element);
    if (t->members) {
        g_ptr_array_unref(t->members);
    }
    if (t->variants) {
        g_ptr_array_unref(t->variants);
    }
    g_strfreev(t->features);
    g_free(t);
}

static BdSchemaType *type_new(const char *name, BdSchemaKind kind,
                              const char *origin)
{
    BdSchemaType *t = g_new0(BdSchemaType, 1);

    t->name = g_strdup(name);
    t->kind = kind;
    t->origin = origin;
    t->members = g_ptr_array_new_with_free_func(member_free);
    if (kind == BD_SCHEMA_UNION) {
        t->variants = g_ptr_array_new_with_free_func(member_free);
    }
    return t;
}

static void command_free(gpointer p)
{
    BdSchemaCommand *c = p;

    g_free(c->name);
    g_free(c->arg_type);
    g_free(c->ret_type);
    g_strfreev(c->features);
    g_free(c);
}

BdSchemaRegistry *bd_schema_registry(void)
{
    if (!registry) {
        BdSchemaType *qtype;

        registry = g_new0(BdSchemaRegistry, 1);
        registry->types = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                NULL, type_free);
        registry->entities = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                   NULL, command_free);
        registry->order = g_ptr_array_new();
        for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
            BdSchemaType *t = type_new(builtins[i].name, BD_SCHEMA_BUILTIN,
                                       NULL);
            t->builtin = builtins[i].builtin;
            g_hash_table_insert(registry->types, t->name, t);
        }
        /* QType is QAPI's one built-in enum. */
        qtype = type_new("QType", BD_SCHEMA_ENUM, NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(qtype_values); i++) {
            g_ptr_array_add(qtype->members,
                            member_new(qtype_values[i], NULL, NULL));
        }
        g_hash_table_insert(registry->types, qtype->name, qtype);
    }
    return registry;
}

void bd_schema_reset(void)
{
    if (registry) {
        g_ptr_array_unref(registry->order);
        g_hash_table_destroy(registry->entities);
        g_hash_table_destroy(registry->types);
        g_clear_pointer(&registry, g_free);
    }
}

/* Whether @name names an existing type, without creating arrays. */
static bool type_exists(const char *name)
{
    size_t len = strlen(name);

    if (len > 2 && name[0] == '[' && name[len - 1] == ']') {
        g_autofree char *elem = g_strndup(name + 1, len - 2);
        return type_exists(elem);
    }
    return g_hash_table_contains(bd_schema_registry()->types, name);
}

BdSchemaType *bd_schema_lookup_type(const char *name)
{
    BdSchemaRegistry *r = bd_schema_registry();
    BdSchemaType *t = g_hash_table_lookup(r->types, name);
    size_t len = strlen(name);

    if (!t && len > 2 && name[0] == '[' && name[len - 1] == ']') {
        g_autofree char *elem = g_strndup(name + 1, len - 2);

        if (!bd_schema_lookup_type(elem)) {
            return NULL;
        }
        t = type_new(name, BD_SCHEMA_ARRAY, NULL);
        t->element = g_steal_pointer(&elem);
        t->implicit = true;
        g_hash_table_insert(r->types, t->name, t);
    }
    return t;
}

GPtrArray *bd_schema_object_members(BdSchemaType *type)
{
    GPtrArray *out = g_ptr_array_new();
    GPtrArray *chain = g_ptr_array_new();

    /* Collect the base chain, then add members from the root down. */
    for (BdSchemaType *t = type; t; t = t->base ?
         bd_schema_lookup_type(t->base) : NULL) {
        if (chain->len > 64) {
            break;      /* a cycle; the registry refuses them anyway */
        }
        g_ptr_array_add(chain, t);
    }
    for (guint i = chain->len; i-- > 0;) {
        BdSchemaType *t = chain->pdata[i];
        for (guint j = 0; j < t->members->len; j++) {
            g_ptr_array_add(out, t->members->pdata[j]);
        }
    }
    g_ptr_array_unref(chain);
    return out;
}

BdSchemaType *bd_schema_union_tag_type(BdSchemaType *type)
{
    g_autoptr(GPtrArray) members = bd_schema_object_members(type);

    for (guint i = 0; i < members->len; i++) {
        BdSchemaMember *m = members->pdata[i];
        if (!strcmp(m->name, type->tag)) {
            return bd_schema_lookup_type(m->type);
        }
    }
    return NULL;
}

const char *bd_schema_union_branch(BdSchemaType *type, const char *value)
{
    for (guint i = 0; i < type->variants->len; i++) {
        BdSchemaMember *v = type->variants->pdata[i];
        if (!strcmp(v->name, value)) {
            return v->type;
        }
    }
    return NULL;
}

bool bd_schema_enum_has(BdSchemaType *type, const char *value)
{
    for (guint i = 0; i < type->members->len; i++) {
        if (!strcmp(((BdSchemaMember *)type->members->pdata[i])->name,
                    value)) {
            return true;
        }
    }
    return false;
}

bool bd_schema_builtin_is_int(BdSchemaBuiltin b)
{
    return b >= BD_BUILTIN_INT && b <= BD_BUILTIN_SIZE;
}

bool bd_schema_has_command(const char *name)
{
    BdSchemaCommand *c = g_hash_table_lookup(bd_schema_registry()->entities,
                                             name);
    return c && !c->is_event;
}

gboolean bd_schema_command_allows_oob(const char *name)
{
    BdSchemaCommand *c = g_hash_table_lookup(bd_schema_registry()->entities,
                                             name);
    return c && !c->is_event && c->allow_oob;
}

GPtrArray *bd_schema_command_names(void)
{
    BdSchemaRegistry *r = bd_schema_registry();
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < r->order->len; i++) {
        BdSchemaCommand *c = r->order->pdata[i];
        if (!c->is_event) {
            g_ptr_array_add(out, g_strdup(c->name));
        }
    }
    return out;
}

/* ---- adding a schema, with an undo log ---- */

typedef enum UndoKind {
    UNDO_TYPE,          /* remove type @name */
    UNDO_ENTITY,        /* remove command/event @name */
    UNDO_VALUES,        /* truncate enum @name's values to @len */
    UNDO_VARIANTS,      /* truncate union @name's branches to @len */
} UndoKind;

typedef struct Undo {
    UndoKind kind;
    char *name;
    guint len;
} Undo;

typedef struct AddCtx {
    const char *origin;         /* interned */
    const char *info;           /* current expression's file:line */
    GArray *undo;               /* of Undo */
    GPtrArray *check;           /* new types to check references of */
    GPtrArray *check_entities;  /* new commands/events, likewise */
    GError **errp;
} AddCtx;

static void undo_clear(gpointer p)
{
    g_free(((Undo *)p)->name);
}

static void log_undo(AddCtx *ctx, UndoKind kind, const char *name, guint len)
{
    Undo u = { kind, g_strdup(name), len };
    g_array_append_val(ctx->undo, u);
}

static void rollback(AddCtx *ctx, guint order_len)
{
    BdSchemaRegistry *r = bd_schema_registry();

    for (guint i = ctx->undo->len; i-- > 0;) {
        Undo *u = &g_array_index(ctx->undo, Undo, i);
        BdSchemaType *t;

        switch (u->kind) {
        case UNDO_TYPE:
            g_hash_table_remove(r->types, u->name);
            break;
        case UNDO_ENTITY:
            g_ptr_array_set_size(r->order, order_len);
            g_hash_table_remove(r->entities, u->name);
            break;
        case UNDO_VALUES:
            t = g_hash_table_lookup(r->types, u->name);
            g_ptr_array_set_size(t->members, u->len);
            break;
        case UNDO_VARIANTS:
            t = g_hash_table_lookup(r->types, u->name);
            g_ptr_array_set_size(t->variants, u->len);
            break;
        }
    }
}

/* "core" or "plugin NAME", for messages. */
static char *origin_desc(const char *origin)
{
    if (!origin) {
        return g_strdup("built-in");
    }
    if (!strcmp(origin, "core")) {
        return g_strdup("core");
    }
    return g_strdup_printf("plugin %s", origin);
}

static bool conflict(AddCtx *ctx, const char *what, const char *other)
{
    g_autofree char *me = origin_desc(ctx->origin);
    g_autofree char *them = origin_desc(other);

    bd_error_setg(ctx->errp,
                  "%s: %s is already provided by %s", me, what, them);
    return false;
}

G_GNUC_PRINTF(2, 3)
static bool bad(AddCtx *ctx, const char *fmt, ...)
{
    g_autofree char *me = origin_desc(ctx->origin);
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    bd_error_setg(ctx->errp, "%s: %s: %s", me,
                  ctx->info ? ctx->info : "schema", msg);
    return false;
}

/* A type reference: "T", ["T"] (-> "[T]") or {"type": ...}. */
static char *type_ref(JsonNode *node, char ***features)
{
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        JsonObject *o = json_node_get_object(node);
        JsonNode *t = json_object_get_member(o, "type");
        JsonNode *f = json_object_get_member(o, "features");

        if (features && f && JSON_NODE_HOLDS_ARRAY(f)) {
            JsonArray *a = json_node_get_array(f);
            GPtrArray *v = g_ptr_array_new();
            for (guint i = 0; i < json_array_get_length(a); i++) {
                const char *s = json_array_get_string_element(a, i);
                if (s) {
                    g_ptr_array_add(v, g_strdup(s));
                }
            }
            g_ptr_array_add(v, NULL);
            *features = (char **)g_ptr_array_free(v, FALSE);
        }
        return t ? type_ref(t, NULL) : NULL;
    }
    if (JSON_NODE_HOLDS_ARRAY(node)) {
        JsonArray *a = json_node_get_array(node);
        const char *elem = json_array_get_length(a) == 1 ?
            json_array_get_string_element(a, 0) : NULL;
        return elem ? g_strdup_printf("[%s]", elem) : NULL;
    }
    if (JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        return g_strdup(json_node_get_string(node));
    }
    return NULL;
}

static char **string_list(JsonObject *o, const char *key)
{
    JsonNode *n = json_object_get_member(o, key);
    GPtrArray *v;
    JsonArray *a;

    if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
        return NULL;
    }
    a = json_node_get_array(n);
    v = g_ptr_array_new();
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *e = json_array_get_element(a, i);
        const char *s = NULL;
        if (JSON_NODE_HOLDS_OBJECT(e)) {
            s = json_object_get_string_member_with_default(
                json_node_get_object(e), "name", NULL);
        } else if (JSON_NODE_HOLDS_VALUE(e)) {
            s = json_node_get_string(e);
        }
        if (s) {
            g_ptr_array_add(v, g_strdup(s));
        }
    }
    g_ptr_array_add(v, NULL);
    return (char **)g_ptr_array_free(v, FALSE);
}

/* Fill @members from a MEMBERS object ("*name" optional). */
static bool parse_members(AddCtx *ctx, JsonObject *data, GPtrArray *members,
                          bool allow_optional)
{
    g_autoptr(GList) names = json_object_get_members(data);

    for (GList *l = names; l; l = l->next) {
        const char *key = l->data;
        bool optional = allow_optional && key[0] == '*';
        char **features = NULL;
        char *type = type_ref(json_object_get_member(data, key), &features);
        BdSchemaMember *m;

        if (!type) {
            g_strfreev(features);
            return bad(ctx, "member '%s' has no valid type", key);
        }
        m = member_new(optional ? key + 1 : key, NULL, ctx->origin);
        m->type = type;
        m->optional = optional;
        m->features = features;
        g_ptr_array_add(members, m);
    }
    return true;
}

static bool add_type(AddCtx *ctx, BdSchemaType *t)
{
    BdSchemaRegistry *r = bd_schema_registry();
    BdSchemaType *old = g_hash_table_lookup(r->types, t->name);
    BdSchemaCommand *ent = g_hash_table_lookup(r->entities, t->name);

    if (old || ent) {
        g_autofree char *what = g_strdup_printf("type '%s'", t->name);
        const char *other = old ? old->origin : ent->origin;
        type_free(t);
        return conflict(ctx, what, other);
    }
    g_hash_table_insert(r->types, t->name, t);
    log_undo(ctx, UNDO_TYPE, t->name, 0);
    g_ptr_array_add(ctx->check, t->name);
    return true;
}

static bool add_enum_value(AddCtx *ctx, BdSchemaType *e, const char *value,
                           char **features, bool quiet_if_present)
{
    for (guint i = 0; i < e->members->len; i++) {
        BdSchemaMember *m = e->members->pdata[i];
        if (!strcmp(m->name, value)) {
            g_autofree char *what = NULL;
            g_strfreev(features);
            if (quiet_if_present) {
                return true;
            }
            what = g_strdup_printf("enum value '%s' of %s", value, e->name);
            return conflict(ctx, what, m->origin ? m->origin : e->origin);
        }
    }
    {
        BdSchemaMember *m = member_new(value, NULL, ctx->origin);
        m->features = features;
        g_ptr_array_add(e->members, m);
    }
    return true;
}

static bool parse_enum_values(AddCtx *ctx, BdSchemaType *e, JsonObject *expr)
{
    JsonNode *data = json_object_get_member(expr, "data");
    JsonArray *a;

    if (!data || !JSON_NODE_HOLDS_ARRAY(data)) {
        return bad(ctx, "enum '%s' needs a 'data' array", e->name);
    }
    a = json_node_get_array(data);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *v = json_array_get_element(a, i);
        const char *name = NULL;
        char **features = NULL;

        if (JSON_NODE_HOLDS_OBJECT(v)) {
            name = json_object_get_string_member_with_default(
                json_node_get_object(v), "name", NULL);
            features = string_list(json_node_get_object(v), "features");
        } else if (JSON_NODE_HOLDS_VALUE(v) &&
                   json_node_get_value_type(v) == G_TYPE_STRING) {
            name = json_node_get_string(v);
        }
        if (!name) {
            g_strfreev(features);
            return bad(ctx, "bad value in enum '%s'", e->name);
        }
        if (!add_enum_value(ctx, e, name, features, false)) {
            return false;
        }
    }
    return true;
}

/* Object-valued 'data' becomes an implicit struct called @implicit. */
static char *data_type(AddCtx *ctx, JsonObject *expr, const char *key,
                       const char *implicit, bool *ok)
{
    JsonNode *data = json_object_get_member(expr, key);

    *ok = true;
    if (!data) {
        return NULL;
    }
    if (JSON_NODE_HOLDS_OBJECT(data)) {
        BdSchemaType *t = type_new(implicit, BD_SCHEMA_STRUCT, ctx->origin);
        t->implicit = true;
        if (!parse_members(ctx, json_node_get_object(data), t->members,
                           true)) {
            type_free(t);
            *ok = false;
            return NULL;
        }
        if (!add_type(ctx, t)) {
            *ok = false;
            return NULL;
        }
        return g_strdup(implicit);
    }
    {
        char *name = type_ref(data, NULL);
        if (!name) {
            *ok = bad(ctx, "'%s' must be a type name or an object", key);
        }
        return name;
    }
}

static bool add_entity(AddCtx *ctx, JsonObject *expr, bool is_event)
{
    BdSchemaRegistry *r = bd_schema_registry();
    const char *name = json_object_get_string_member(expr, is_event ?
                                                     "event" : "command");
    g_autofree char *implicit = g_strdup_printf("q_obj-%s-arg", name);
    BdSchemaCommand *old = g_hash_table_lookup(r->entities, name);
    BdSchemaType *oldt = g_hash_table_lookup(r->types, name);
    BdSchemaCommand *c;
    bool ok;

    if (old || oldt) {
        g_autofree char *what = g_strdup_printf("%s '%s'",
                                                is_event ? "event" : "command",
                                                name);
        return conflict(ctx, what, old ? old->origin : oldt->origin);
    }
    c = g_new0(BdSchemaCommand, 1);
    c->name = g_strdup(name);
    c->is_event = is_event;
    c->origin = ctx->origin;
    c->boxed = json_object_get_boolean_member_with_default(expr, "boxed",
                                                           FALSE);
    c->allow_oob = json_object_get_boolean_member_with_default(
        expr, "allow-oob", FALSE);
    c->features = string_list(expr, "features");
    if (json_object_has_member(expr, "returns")) {
        c->ret_type = type_ref(json_object_get_member(expr, "returns"),
                               NULL);
    }
    g_hash_table_insert(r->entities, c->name, c);
    g_ptr_array_add(r->order, c);
    log_undo(ctx, UNDO_ENTITY, c->name, 0);
    c->arg_type = data_type(ctx, expr, "data", implicit, &ok);
    /* Types may be defined after the command: checked once all are in. */
    g_ptr_array_add(ctx->check_entities, c);
    return ok;
}

static bool add_definition(AddCtx *ctx, JsonObject *expr)
{
    const char *name;
    BdSchemaType *t;

    if ((name = json_object_get_string_member_with_default(expr, "enum",
                                                           NULL))) {
        t = type_new(name, BD_SCHEMA_ENUM, ctx->origin);
        t->features = string_list(expr, "features");
        if (!add_type(ctx, t)) {
            return false;
        }
        return parse_enum_values(ctx, t, expr);
    }
    if ((name = json_object_get_string_member_with_default(expr, "struct",
                                                           NULL))) {
        JsonNode *data = json_object_get_member(expr, "data");
        t = type_new(name, BD_SCHEMA_STRUCT, ctx->origin);
        t->features = string_list(expr, "features");
        t->base = g_strdup(json_object_get_string_member_with_default(
                               expr, "base", NULL));
        if (!data || !JSON_NODE_HOLDS_OBJECT(data) ||
            !parse_members(ctx, json_node_get_object(data), t->members,
                           true)) {
            type_free(t);
            return ctx->errp && *ctx->errp ? false :
                bad(ctx, "struct '%s' needs a 'data' object", name);
        }
        return add_type(ctx, t);
    }
    if ((name = json_object_get_string_member_with_default(expr, "union",
                                                           NULL))) {
        g_autofree char *implicit = g_strdup_printf("q_obj-%s-base", name);
        JsonNode *data = json_object_get_member(expr, "data");
        bool ok;

        t = type_new(name, BD_SCHEMA_UNION, ctx->origin);
        t->features = string_list(expr, "features");
        t->tag = g_strdup(json_object_get_string_member_with_default(
                              expr, "discriminator", NULL));
        if (!data || !JSON_NODE_HOLDS_OBJECT(data) || !t->tag ||
            !parse_members(ctx, json_node_get_object(data), t->variants,
                           false)) {
            type_free(t);
            return ctx->errp && *ctx->errp ? false :
                bad(ctx, "union '%s' needs 'discriminator' and 'data'", name);
        }
        if (!add_type(ctx, t)) {
            return false;
        }
        t->base = data_type(ctx, expr, "base", implicit, &ok);
        if (ok && !t->base) {
            return bad(ctx, "union '%s' needs a 'base'", name);
        }
        return ok;
    }
    if ((name = json_object_get_string_member_with_default(expr, "alternate",
                                                           NULL))) {
        JsonNode *data = json_object_get_member(expr, "data");
        t = type_new(name, BD_SCHEMA_ALTERNATE, ctx->origin);
        t->features = string_list(expr, "features");
        if (!data || !JSON_NODE_HOLDS_OBJECT(data) ||
            !parse_members(ctx, json_node_get_object(data), t->members,
                           false)) {
            type_free(t);
            return ctx->errp && *ctx->errp ? false :
                bad(ctx, "alternate '%s' needs a 'data' object", name);
        }
        return add_type(ctx, t);
    }
    if (json_object_has_member(expr, "command")) {
        return add_entity(ctx, expr, false);
    }
    if (json_object_has_member(expr, "event")) {
        return add_entity(ctx, expr, true);
    }
    return true;    /* extensions are applied in a second pass */
}

static BdSchemaType *extended(AddCtx *ctx, const char *name,
                              BdSchemaKind kind, const char *what)
{
    BdSchemaType *t = g_hash_table_lookup(bd_schema_registry()->types, name);

    if (!t || t->kind != kind) {
        bad(ctx, "%s: no %s '%s' to extend", what,
            kind == BD_SCHEMA_ENUM ? "enum" : "union", name);
        return NULL;
    }
    return t;
}

static bool apply_extension(AddCtx *ctx, JsonObject *expr)
{
    const char *name;
    BdSchemaType *t;

    if ((name = json_object_get_string_member_with_default(
             expr, "extend-enum", NULL))) {
        if (!(t = extended(ctx, name, BD_SCHEMA_ENUM, "extend-enum"))) {
            return false;
        }
        log_undo(ctx, UNDO_VALUES, t->name, t->members->len);
        return parse_enum_values(ctx, t, expr);
    }
    if ((name = json_object_get_string_member_with_default(
             expr, "extend-union", NULL))) {
        JsonNode *data = json_object_get_member(expr, "data");
        g_autoptr(GPtrArray) branches =
            g_ptr_array_new_with_free_func(member_free);
        BdSchemaType *tag;

        if (!(t = extended(ctx, name, BD_SCHEMA_UNION, "extend-union"))) {
            return false;
        }
        if (!data || !JSON_NODE_HOLDS_OBJECT(data)) {
            return bad(ctx, "extend-union '%s' needs a 'data' object", name);
        }
        if (!parse_members(ctx, json_node_get_object(data), branches,
                           false)) {
            return false;
        }
        tag = bd_schema_union_tag_type(t);
        if (!tag || tag->kind != BD_SCHEMA_ENUM) {
            return bad(ctx, "union '%s' has no enum discriminator", name);
        }
        log_undo(ctx, UNDO_VARIANTS, t->name, t->variants->len);
        log_undo(ctx, UNDO_VALUES, tag->name, tag->members->len);
        for (guint i = 0; i < branches->len; i++) {
            BdSchemaMember *b = branches->pdata[i];
            for (guint j = 0; j < t->variants->len; j++) {
                BdSchemaMember *old = t->variants->pdata[j];
                if (!strcmp(old->name, b->name)) {
                    g_autofree char *what = g_strdup_printf(
                        "branch '%s' of %s", b->name, t->name);
                    return conflict(ctx, what, old->origin);
                }
            }
            if (!type_exists(b->type) ||
                bd_schema_lookup_type(b->type)->kind != BD_SCHEMA_STRUCT) {
                return bad(ctx, "branch '%s' of %s must be a struct type, "
                           "not '%s'", b->name, t->name, b->type);
            }
            add_enum_value(ctx, tag, b->name, NULL, true);
            g_ptr_array_add(t->variants,
                            g_ptr_array_steal_index(branches, i--));
        }
    }
    return true;
}

/* Every type a new definition names must exist. */
static bool check_references(AddCtx *ctx)
{
    for (guint i = 0; i < ctx->check->len; i++) {
        BdSchemaType *t = bd_schema_lookup_type(ctx->check->pdata[i]);
        GPtrArray *lists[2] = { t->kind == BD_SCHEMA_ENUM ? NULL : t->members,
                                t->variants };

        ctx->info = NULL;
        if (t->base && !type_exists(t->base)) {
            return bad(ctx, "'%s' has unknown base '%s'", t->name, t->base);
        }
        for (int k = 0; k < 2; k++) {
            for (guint j = 0; lists[k] && j < lists[k]->len; j++) {
                BdSchemaMember *m = lists[k]->pdata[j];
                if (!type_exists(m->type)) {
                    return bad(ctx, "'%s' member '%s' has unknown type '%s'",
                               t->name, m->name, m->type);
                }
            }
        }
        if (t->kind == BD_SCHEMA_UNION) {
            BdSchemaType *tag = bd_schema_union_tag_type(t);
            if (!tag || tag->kind != BD_SCHEMA_ENUM) {
                return bad(ctx, "discriminator '%s' of union '%s' is not an "
                           "enum member of its base", t->tag, t->name);
            }
        }
    }
    for (guint i = 0; i < ctx->check_entities->len; i++) {
        BdSchemaCommand *c = ctx->check_entities->pdata[i];

        if (c->arg_type && !type_exists(c->arg_type)) {
            return bad(ctx, "%s '%s' uses unknown type '%s'",
                       c->is_event ? "event" : "command", c->name,
                       c->arg_type);
        }
        if (c->ret_type && !type_exists(c->ret_type)) {
            return bad(ctx, "command '%s' returns unknown type '%s'",
                       c->name, c->ret_type);
        }
    }
    return true;
}

bool bd_schema_add(const char *text, GError **errp)
{
    BdSchemaRegistry *r = bd_schema_registry();
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    JsonNode *root;
    JsonObject *obj;
    JsonArray *exprs;
    AddCtx ctx = { 0 };
    guint order_len = r->order->len;
    bool ok = true;

    if (!json_parser_load_from_data(parser, text, -1, &local)) {
        bd_error_setg(errp, "schema is not valid JSON: %s", local->message);
        return false;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root) ||
        !json_object_get_string_member_with_default(
            obj = json_node_get_object(root), "origin", NULL) ||
        !json_object_has_member(obj, "exprs") ||
        !JSON_NODE_HOLDS_ARRAY(json_object_get_member(obj, "exprs"))) {
        bd_error_setg(errp, "schema text lacks 'origin' or 'exprs'");
        return false;
    }
    ctx.origin = g_intern_string(json_object_get_string_member(obj,
                                                               "origin"));
    ctx.undo = g_array_new(FALSE, FALSE, sizeof(Undo));
    g_array_set_clear_func(ctx.undo, undo_clear);
    ctx.check = g_ptr_array_new();
    ctx.check_entities = g_ptr_array_new();
    ctx.errp = &local;
    exprs = json_object_get_array_member(obj, "exprs");

    /* Definitions first, so that extensions may target any of them. */
    for (int pass = 0; ok && pass < 2; pass++) {
        for (guint i = 0; ok && i < json_array_get_length(exprs); i++) {
            JsonObject *e = json_array_get_object_element(exprs, i);
            JsonNode *expr = e ? json_object_get_member(e, "expr") : NULL;

            if (!expr || !JSON_NODE_HOLDS_OBJECT(expr)) {
                ok = bad(&ctx, "entry %u has no 'expr' object", i);
                break;
            }
            ctx.info = json_object_get_string_member_with_default(e, "info",
                                                                  NULL);
            ok = pass == 0 ? add_definition(&ctx, json_node_get_object(expr))
                           : apply_extension(&ctx,
                                             json_node_get_object(expr));
        }
    }
    if (ok) {
        ok = check_references(&ctx);
    }
    if (!ok) {
        rollback(&ctx, order_len);
        g_propagate_error(errp, g_steal_pointer(&local));
    }
    g_array_unref(ctx.undo);
    g_ptr_array_unref(ctx.check);
    g_ptr_array_unref(ctx.check_entities);
    return ok;
}
