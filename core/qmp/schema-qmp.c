/*
 * The QMP face of the schema engine: query-qmp-schema.
 */
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"

static bool qmp_query_qmp_schema(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    *ret = bd_schema_introspect();
    return true;
}

void bd_schema_register_qmp_commands(void)
{
    bd_qmp_register_command("query-qmp-schema", qmp_query_qmp_schema, 0);
}
