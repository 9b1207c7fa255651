/*
 * The schema engine's registry, shared by its parts (schema-registry.c,
 * schema-validate.c, schema-keyval.c, schema-introspect.c).  Not for use
 * outside core/schema-*.c.
 */
#ifndef BLOCKD_CORE_SCHEMA_INTERNAL_H
#define BLOCKD_CORE_SCHEMA_INTERNAL_H

#include "schema/schema.h"

typedef enum BdSchemaKind {
    BD_SCHEMA_BUILTIN,
    BD_SCHEMA_ENUM,
    BD_SCHEMA_STRUCT,       /* also implicit argument/base objects */
    BD_SCHEMA_UNION,
    BD_SCHEMA_ALTERNATE,
    BD_SCHEMA_ARRAY,
} BdSchemaKind;

/* The built-in scalar types; the integer ones in one run. */
typedef enum BdSchemaBuiltin {
    BD_BUILTIN_STR,
    BD_BUILTIN_NUMBER,
    BD_BUILTIN_INT,
    BD_BUILTIN_INT8,
    BD_BUILTIN_INT16,
    BD_BUILTIN_INT32,
    BD_BUILTIN_INT64,
    BD_BUILTIN_UINT8,
    BD_BUILTIN_UINT16,
    BD_BUILTIN_UINT32,
    BD_BUILTIN_UINT64,
    BD_BUILTIN_SIZE,
    BD_BUILTIN_BOOL,
    BD_BUILTIN_NULL,
    BD_BUILTIN_ANY,
} BdSchemaBuiltin;

/* A struct member, union base member, enum value or union/alternate
 * branch (then @name is the case and @type the branch type). */
typedef struct BdSchemaMember {
    char *name;
    char *type;             /* NULL for enum values */
    bool optional;
    char **features;        /* NULL-terminated, maybe NULL */
    const char *origin;     /* interned */
} BdSchemaMember;

typedef struct BdSchemaType {
    char *name;
    BdSchemaKind kind;
    BdSchemaBuiltin builtin;        /* BUILTIN */
    const char *origin;             /* interned; NULL for builtins */
    char *base;                     /* STRUCT, UNION: base type or NULL */
    char *tag;                      /* UNION: discriminator */
    char *element;                  /* ARRAY */
    GPtrArray *members;             /* own members / enum values /
                                       alternate branches */
    GPtrArray *variants;            /* UNION branches */
    char **features;
    bool implicit;                  /* q_obj-* or array: not user-named */
} BdSchemaType;

typedef struct BdSchemaCommand {
    char *name;
    bool is_event;
    char *arg_type;                 /* NULL: no arguments */
    bool boxed;
    char *ret_type;                 /* NULL: returns nothing */
    bool allow_oob;
    char **features;
    const char *origin;
} BdSchemaCommand;

typedef struct BdSchemaRegistry {
    GHashTable *types;              /* name -> BdSchemaType */
    GHashTable *entities;           /* name -> BdSchemaCommand */
    GPtrArray *order;               /* BdSchemaCommand, definition order */
} BdSchemaRegistry;

/* The registry, created with the built-in types on first use. */
BdSchemaRegistry *bd_schema_registry(void);

/* Look a type up; "[T]" names the array of T (created on demand when T
 * exists).  NULL if unknown. */
BdSchemaType *bd_schema_lookup_type(const char *name);

/* All members of a struct or union object in visiting order: its base's
 * (recursively), then its own.  The array holds borrowed pointers. */
GPtrArray *bd_schema_object_members(BdSchemaType *type);

/* The enum type of a union's discriminator. */
BdSchemaType *bd_schema_union_tag_type(BdSchemaType *type);

/* The branch type of union @type for case @value, or NULL. */
const char *bd_schema_union_branch(BdSchemaType *type, const char *value);

/* Whether enum @type has @value. */
bool bd_schema_enum_has(BdSchemaType *type, const char *value);

/* Whether @b is one of the integer built-ins. */
bool bd_schema_builtin_is_int(BdSchemaBuiltin b);

/* Keyval coercion of one scalar string @str for built-in @b (see
 * schema-keyval.c).  Returns a new node or NULL with @errp set, naming
 * @full (the member's path) or @leaf as QEMU does. */
JsonNode *bd_schema_keyval_scalar(BdSchemaBuiltin b, const char *str,
                                  const char *full, GError **errp);


#endif /* BLOCKD_CORE_SCHEMA_INTERNAL_H */
