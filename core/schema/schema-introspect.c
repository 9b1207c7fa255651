/*
 * query-qmp-schema: the registry as a list of SchemaInfo objects, built
 * the way QEMU's introspection generator builds it: commands and events
 * in definition order, then every type they reach in the order first
 * used; type names other than built-ins are masked as numbers ("0",
 * "1", ...), all integer types show as "int", arrays are named "[T]",
 * commands and events without arguments or return value use an empty
 * object type, and a union lists a branch for every value of its
 * discriminator (an empty object for values without a branch).
 */
#include <string.h>

#include "schema/schema-int.h"

#define EMPTY_OBJECT "q_empty"

typedef struct Intro {
    GHashTable *masked;     /* type name -> masked name */
    GPtrArray *queue;       /* type names to describe, in use order */
    GHashTable *queued;
    JsonArray *out;
} Intro;

static const char *mask(Intro *in, const char *name)
{
    char *m = g_hash_table_lookup(in->masked, name);

    if (!m) {
        m = g_strdup_printf("%u", g_hash_table_size(in->masked));
        g_hash_table_insert(in->masked, g_strdup(name), m);
    }
    return m;
}

/* Record that @name is used and return the name SchemaInfo shows. */
static char *use_type(Intro *in, const char *name)
{
    BdSchemaType *t = strcmp(name, EMPTY_OBJECT) ?
        bd_schema_lookup_type(name) : NULL;
    const char *key = name;

    if (t && t->kind == BD_SCHEMA_BUILTIN &&
        bd_schema_builtin_is_int(t->builtin)) {
        key = "int";
    }
    if (t && t->kind == BD_SCHEMA_ARRAY) {
        g_autofree char *elem = use_type(in, t->element);
        char *shown = g_strdup_printf("[%s]", elem);
        if (!g_hash_table_contains(in->queued, shown)) {
            g_hash_table_add(in->queued, g_strdup(shown));
            g_ptr_array_add(in->queue, g_strdup(name));
        }
        return shown;
    }
    if (!g_hash_table_contains(in->queued, key)) {
        g_hash_table_add(in->queued, g_strdup(key));
        g_ptr_array_add(in->queue, g_strdup(key));
    }
    if (t && t->kind == BD_SCHEMA_BUILTIN) {
        return g_strdup(key);
    }
    return g_strdup(mask(in, key));
}

static void add_features(JsonObject *o, char **features)
{
    if (features && features[0]) {
        JsonArray *a = json_array_new();
        for (char **f = features; *f; f++) {
            json_array_add_string_element(a, *f);
        }
        json_object_set_array_member(o, "features", a);
    }
}

static JsonObject *info_new(const char *name, const char *meta)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "meta-type", meta);
    return o;
}

static void set_type(Intro *in, JsonObject *o, const char *key,
                     const char *type)
{
    g_autofree char *shown = use_type(in, type ? type : EMPTY_OBJECT);

    json_object_set_string_member(o, key, shown);
}

static JsonArray *object_members(Intro *in, BdSchemaType *t)
{
    g_autoptr(GPtrArray) members = bd_schema_object_members(t);
    JsonArray *a = json_array_new();

    for (guint i = 0; i < members->len; i++) {
        BdSchemaMember *m = members->pdata[i];
        JsonObject *mo = json_object_new();

        json_object_set_string_member(mo, "name", m->name);
        set_type(in, mo, "type", m->type);
        if (m->optional) {
            json_object_set_null_member(mo, "default");
        }
        add_features(mo, m->features);
        json_array_add_object_element(a, mo);
    }
    return a;
}

static const char *json_type(BdSchemaBuiltin b)
{
    switch (b) {
    case BD_BUILTIN_STR:
        return "string";
    case BD_BUILTIN_NUMBER:
        return "number";
    case BD_BUILTIN_BOOL:
        return "boolean";
    case BD_BUILTIN_NULL:
        return "null";
    case BD_BUILTIN_ANY:
        return "value";
    default:
        return "int";
    }
}

static void describe_type(Intro *in, const char *name)
{
    BdSchemaType *t = strcmp(name, EMPTY_OBJECT) ?
        bd_schema_lookup_type(name) : NULL;
    JsonObject *o;

    if (!t) {
        o = info_new(mask(in, name), "object");
        json_object_set_array_member(o, "members", json_array_new());
        json_array_add_object_element(in->out, o);
        return;
    }
    switch (t->kind) {
    case BD_SCHEMA_BUILTIN:
        o = info_new(name, "builtin");
        json_object_set_string_member(o, "json-type", json_type(t->builtin));
        break;
    case BD_SCHEMA_ARRAY: {
        g_autofree char *elem = use_type(in, t->element);
        g_autofree char *shown = g_strdup_printf("[%s]", elem);
        o = info_new(shown, "array");
        json_object_set_string_member(o, "element-type", elem);
        break;
    }
    case BD_SCHEMA_ENUM: {
        JsonArray *members = json_array_new();
        JsonArray *values = json_array_new();
        o = info_new(mask(in, name), "enum");
        for (guint i = 0; i < t->members->len; i++) {
            BdSchemaMember *m = t->members->pdata[i];
            JsonObject *mo = json_object_new();
            json_object_set_string_member(mo, "name", m->name);
            add_features(mo, m->features);
            json_array_add_object_element(members, mo);
            json_array_add_string_element(values, m->name);
        }
        json_object_set_array_member(o, "members", members);
        json_object_set_array_member(o, "values", values);
        break;
    }
    case BD_SCHEMA_STRUCT:
    case BD_SCHEMA_UNION:
        o = info_new(mask(in, name), "object");
        json_object_set_array_member(o, "members", object_members(in, t));
        if (t->kind == BD_SCHEMA_UNION) {
            BdSchemaType *tag = bd_schema_union_tag_type(t);
            JsonArray *variants = json_array_new();

            json_object_set_string_member(o, "tag", t->tag);
            for (guint i = 0; i < t->variants->len; i++) {
                BdSchemaMember *v = t->variants->pdata[i];
                JsonObject *vo = json_object_new();
                json_object_set_string_member(vo, "case", v->name);
                set_type(in, vo, "type", v->type);
                json_array_add_object_element(variants, vo);
            }
            for (guint i = 0; tag && i < tag->members->len; i++) {
                BdSchemaMember *m = tag->members->pdata[i];
                if (!bd_schema_union_branch(t, m->name)) {
                    JsonObject *vo = json_object_new();
                    json_object_set_string_member(vo, "case", m->name);
                    set_type(in, vo, "type", NULL);
                    json_array_add_object_element(variants, vo);
                }
            }
            json_object_set_array_member(o, "variants", variants);
        }
        break;
    case BD_SCHEMA_ALTERNATE: {
        JsonArray *members = json_array_new();
        o = info_new(mask(in, name), "alternate");
        for (guint i = 0; i < t->members->len; i++) {
            BdSchemaMember *m = t->members->pdata[i];
            JsonObject *mo = json_object_new();
            set_type(in, mo, "type", m->type);
            json_array_add_object_element(members, mo);
        }
        json_object_set_array_member(o, "members", members);
        break;
    }
    default:
        g_assert_not_reached();
    }
    add_features(o, t->features);
    json_array_add_object_element(in->out, o);
}

JsonNode *bd_schema_introspect(void)
{
    BdSchemaRegistry *r = bd_schema_registry();
    Intro in = {
        .masked = g_hash_table_new_full(g_str_hash, g_str_equal,
                                        g_free, g_free),
        .queue = g_ptr_array_new_with_free_func(g_free),
        .queued = g_hash_table_new_full(g_str_hash, g_str_equal,
                                        g_free, NULL),
        .out = json_array_new(),
    };

    for (guint i = 0; i < r->order->len; i++) {
        BdSchemaCommand *c = r->order->pdata[i];
        JsonObject *o = info_new(c->name, c->is_event ? "event" : "command");

        set_type(&in, o, "arg-type", c->arg_type);
        if (!c->is_event) {
            set_type(&in, o, "ret-type", c->ret_type);
            if (c->allow_oob) {
                json_object_set_boolean_member(o, "allow-oob", TRUE);
            }
        }
        add_features(o, c->features);
        json_array_add_object_element(in.out, o);
    }
    /* The queue grows while types are described. */
    for (guint i = 0; i < in.queue->len; i++) {
        describe_type(&in, in.queue->pdata[i]);
    }
    g_hash_table_destroy(in.masked);
    g_hash_table_destroy(in.queued);
    g_ptr_array_unref(in.queue);
    {
        JsonNode *node = json_node_init_array(json_node_alloc(), in.out);
        json_array_unref(in.out);
        return node;
    }
}
