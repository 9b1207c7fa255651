/*
 * Read-only questions to the schema registry for listings: the values of
 * an enum, the members of a union branch, and the names QOM-style help
 * and qom-list-properties give to member types.  Used by --object,
 * --blockdev and --export help and by qom-list-properties, so that what
 * they list is exactly what the schema (core plus plugins) accepts.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_SCHEMA_QUERY_H
#define BLOCKD_CORE_SCHEMA_QUERY_H

#include <stdbool.h>

#include <glib.h>

/* One member of an object type, for listings. */
typedef struct BdSchemaMemberInfo {
    char *name;
    char *type;             /* the schema's type name, "[T]" for arrays */
    bool optional;
} BdSchemaMemberInfo;

/*
 * The values of enum @enum_name in definition order (core values first,
 * then those plugins added), as a new array of strings that frees them;
 * NULL if there is no such enum.
 */
GPtrArray *bd_schema_enum_values(const char *enum_name);

/*
 * The members of flat union @union_name's branch for @value: if
 * @with_base, the union's base members other than the discriminator come
 * first; then the branch type's members (its own base first).  A new
 * array of BdSchemaMemberInfo that frees them; NULL if there is no such
 * union or branch.  A value with no branch type of its own (an enum value
 * without branch) gives just the base members.
 */
GPtrArray *bd_schema_union_branch_members(const char *union_name,
                                          const char *value,
                                          bool with_base);

/*
 * The name QOM gives a property of schema type @type: "string" for str,
 * "int" for the signed integers, "uint8".."uint64", "size", "bool",
 * "number", "any"; the element's name for an array; the type's own name
 * otherwise.  A new string.
 */
char *bd_schema_qom_type_name(const char *type);

#endif /* BLOCKD_CORE_SCHEMA_QUERY_H */
