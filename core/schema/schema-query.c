/*
 * Listings from the schema registry (see schema-query.h).
 */
#include <string.h>

#include "schema/schema-int.h"
#include "schema/schema-query.h"

GPtrArray *bd_schema_enum_values(const char *enum_name)
{
    BdSchemaType *t = bd_schema_lookup_type(enum_name);
    GPtrArray *out;

    if (!t || t->kind != BD_SCHEMA_ENUM) {
        return NULL;
    }
    out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < t->members->len; i++) {
        BdSchemaMember *m = t->members->pdata[i];
        g_ptr_array_add(out, g_strdup(m->name));
    }
    return out;
}

static void member_info_free(gpointer p)
{
    BdSchemaMemberInfo *info = p;

    g_free(info->name);
    g_free(info->type);
    g_free(info);
}

static void add_members(GPtrArray *out, BdSchemaType *t, const char *skip)
{
    g_autoptr(GPtrArray) members = bd_schema_object_members(t);

    for (guint i = 0; i < members->len; i++) {
        BdSchemaMember *m = members->pdata[i];
        BdSchemaMemberInfo *info;

        if (skip && !strcmp(m->name, skip)) {
            continue;
        }
        info = g_new0(BdSchemaMemberInfo, 1);
        info->name = g_strdup(m->name);
        info->type = g_strdup(m->type);
        info->optional = m->optional;
        g_ptr_array_add(out, info);
    }
}

GPtrArray *bd_schema_union_branch_members(const char *union_name,
                                          const char *value,
                                          bool with_base)
{
    BdSchemaType *u = bd_schema_lookup_type(union_name);
    BdSchemaType *tag;
    const char *branch;
    GPtrArray *out;

    if (!u || u->kind != BD_SCHEMA_UNION) {
        return NULL;
    }
    tag = bd_schema_union_tag_type(u);
    if (!tag || !bd_schema_enum_has(tag, value)) {
        return NULL;
    }
    out = g_ptr_array_new_with_free_func(member_info_free);
    if (with_base) {
        add_members(out, u, u->tag);
    }
    branch = bd_schema_union_branch(u, value);
    if (branch) {
        BdSchemaType *b = bd_schema_lookup_type(branch);
        if (b) {
            add_members(out, b, NULL);
        }
    }
    return out;
}

char *bd_schema_qom_type_name(const char *type)
{
    BdSchemaType *t;

    if (type[0] == '[') {
        g_autofree char *element = g_strndup(type + 1, strlen(type) - 2);
        return bd_schema_qom_type_name(element);
    }
    t = bd_schema_lookup_type(type);
    if (t && t->kind == BD_SCHEMA_BUILTIN) {
        switch (t->builtin) {
        case BD_BUILTIN_STR:
            return g_strdup("string");
        case BD_BUILTIN_INT:
        case BD_BUILTIN_INT8:
        case BD_BUILTIN_INT16:
        case BD_BUILTIN_INT32:
        case BD_BUILTIN_INT64:
            return g_strdup("int");
        default:
            break;
        }
    }
    return g_strdup(type);
}
