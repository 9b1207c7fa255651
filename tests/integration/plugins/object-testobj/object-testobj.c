/*
 * object-testobj: the "testobj" object type, a test plugin that drives
 * every callback of BdObjectType and the BdObject accessors, so that the
 * integration tests can see the core's object life cycle from QMP and the
 * command line.  Not installed.
 */
#include <string.h>

#include <blockd/blockd.h>

#include "object-testobj-schema.h"

typedef struct Testobj {
    char *label;
    char *uses_id;      /* from the 'uses' property */
    BdObject *used;     /* found in complete(), dropped in unparent() */
    int users;          /* how many testobj objects use this one */
    bool fail_complete;
} Testobj;

static bool testobj_create(BdObject *obj, JsonObject *props, GError **errp)
{
    Testobj *t = bd_object_get_opaque(obj);

    if (json_object_get_boolean_member_with_default(props, "fail-create",
                                                    false)) {
        bd_error_setg(errp, "testobj '%s' refuses to be created",
                      bd_object_get_id(obj));
        return false;
    }
    t->label = g_strdup(json_object_get_string_member_with_default(
        props, "label", NULL));
    t->uses_id = g_strdup(json_object_get_string_member_with_default(
        props, "uses", NULL));
    t->fail_complete = json_object_get_boolean_member_with_default(
        props, "fail-complete", false);
    return true;
}

static bool testobj_complete(BdObject *obj, GError **errp)
{
    Testobj *t = bd_object_get_opaque(obj);

    if (t->uses_id) {
        BdObject *other = bd_object_find(t->uses_id, "testobj");

        if (!other || other == obj) {
            bd_error_setg(errp, "testobj '%s' not found", t->uses_id);
            return false;
        }
        t->used = other;
        ((Testobj *)bd_object_get_opaque(other))->users++;
    }
    if (t->fail_complete) {
        bd_error_setg(errp, "testobj '%s' fails to complete",
                      bd_object_get_id(obj));
        return false;
    }
    return true;
}

static bool testobj_can_be_deleted(BdObject *obj)
{
    return ((Testobj *)bd_object_get_opaque(obj))->users == 0;
}

static void testobj_unparent(BdObject *obj)
{
    Testobj *t = bd_object_get_opaque(obj);

    if (t->used) {
        ((Testobj *)bd_object_get_opaque(t->used))->users--;
        t->used = NULL;
    }
}

static void testobj_destroy(BdObject *obj)
{
    Testobj *t = bd_object_get_opaque(obj);

    g_free(t->label);
    g_free(t->uses_id);
}

static const BdObjectType testobj_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "testobj",
    .description = "an object for blockd's tests",
    .parent = "object",
    .instance_size = sizeof(Testobj),
    .create = testobj_create,
    .complete = testobj_complete,
    .can_be_deleted = testobj_can_be_deleted,
    .unparent = testobj_unparent,
    .destroy = testobj_destroy,
};

static bool testobj_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &testobj_type, errp);
}

BD_PLUGIN_DEFINE("object-testobj", "0.1.0",
                 "a test object type (testobj)", "GPL-2.0-or-later",
                 object_testobj_schema, testobj_init);
