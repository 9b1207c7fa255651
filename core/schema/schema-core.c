/*
 * The core's embedded schema, kept apart so that only this file depends
 * on the generated header.
 */
#include "schema/core-schema.h"
#include "schema/schema.h"

bool bd_schema_add_core(GError **errp)
{
    return bd_schema_add(bd_core_schema, errp);
}
