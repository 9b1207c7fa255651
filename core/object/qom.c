/*
 * The QOM tree of qom-list, qom-get and qom-set (see qom.h): "/", its
 * containers, the objects and the children other folders register.
 * Paths resolve as QEMU's object_resolve_path() does: an absolute path
 * walks from the root (empty components, such as a trailing slash, are
 * skipped); a partial one matches the end of every path in the tree and
 * must match exactly one.
 */
#include <string.h>

#include <blockd/error.h>

#include "object/object-int.h"
#include "object/qom.h"

static GPtrArray *containers;   /* of const BdQomContainer * */

void bd_qom_add_container(const BdQomContainer *c)
{
    if (!containers) {
        containers = g_ptr_array_new();
    }
    /* the core may be brought up more than once (tests) */
    if (!g_ptr_array_find(containers, c, NULL)) {
        g_ptr_array_add(containers, (gpointer)c);
    }
}

/* ---- nodes ---- */

typedef enum QomKind {
    QOM_ROOT,
    QOM_OBJECTS,        /* the "objects" container */
    QOM_CONTAINER,      /* a registered container */
    QOM_OBJECT,         /* a user-creatable object */
    QOM_CHILD,          /* a child of a registered container */
} QomKind;

typedef struct QomNode {
    QomKind kind;
    const BdQomContainer *container;    /* QOM_CONTAINER, QOM_CHILD */
    BdObject *obj;                      /* QOM_OBJECT */
    char *id;                           /* QOM_CHILD */
} QomNode;

static void node_clear(QomNode *n)
{
    g_free(n->id);
}

/* The names of @n's children, in qom-list's order (g_ptr_array_unref). */
static GPtrArray *node_children(const QomNode *n)
{
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);

    if (n->kind == QOM_ROOT) {
        g_ptr_array_add(names, g_strdup("objects"));
        for (guint i = 0; containers && i < containers->len; i++) {
            const BdQomContainer *c = containers->pdata[i];

            g_ptr_array_add(names, g_strdup(c->name));
        }
    } else if (n->kind == QOM_OBJECTS) {
        g_autoptr(GPtrArray) objs = bd_objects_in_order();

        for (guint i = 0; i < objs->len; i++) {
            g_ptr_array_add(names,
                            g_strdup(bd_object_get_id(objs->pdata[i])));
        }
    } else if (n->kind == QOM_CONTAINER) {
        g_autoptr(GPtrArray) ids = n->container->children();

        for (guint i = 0; i < ids->len; i++) {
            g_ptr_array_add(names, g_strdup(ids->pdata[i]));
        }
    }
    return names;
}

/* Step from @n to its child @name into *@out. */
static bool node_child(const QomNode *n, const char *name, QomNode *out)
{
    *out = (QomNode) { 0 };
    if (n->kind == QOM_ROOT) {
        if (strcmp(name, "objects") == 0) {
            out->kind = QOM_OBJECTS;
            return true;
        }
        for (guint i = 0; containers && i < containers->len; i++) {
            const BdQomContainer *c = containers->pdata[i];

            if (strcmp(name, c->name) == 0) {
                out->kind = QOM_CONTAINER;
                out->container = c;
                return true;
            }
        }
        return false;
    }
    if (n->kind == QOM_OBJECTS) {
        out->obj = bd_object_find(name, NULL);
        out->kind = QOM_OBJECT;
        return out->obj != NULL;
    }
    if (n->kind == QOM_CONTAINER && n->container->child_type(name)) {
        out->kind = QOM_CHILD;
        out->container = n->container;
        out->id = g_strdup(name);
        return true;
    }
    return false;
}

/* The QOM type name of @n. */
static const char *node_type(const QomNode *n)
{
    switch (n->kind) {
    case QOM_ROOT:
        return "container";
    case QOM_OBJECTS:
    case QOM_CONTAINER:
        return "container";
    case QOM_OBJECT:
        return bd_object_get_type_name(n->obj);
    case QOM_CHILD:
        return n->container->child_type(n->id);
    }
    return "container";
}

/* ---- resolving paths ---- */

/*
 * Partial paths: every node whose path ends with @parts[0..n), found
 * depth first from @n; *@count counts them, the first lands in *@found.
 */
static void match_partial(const QomNode *n, char **path, guint depth,
                          char **parts, guint nparts, guint *count,
                          QomNode *found)
{
    g_autoptr(GPtrArray) names = node_children(n);

    if (depth >= nparts) {
        bool match = true;

        for (guint i = 0; i < nparts; i++) {
            if (strcmp(path[depth - nparts + i], parts[i]) != 0) {
                match = false;
                break;
            }
        }
        if (match && (*count)++ == 0) {
            *found = *n;
            found->id = g_strdup(n->id);
        }
    }
    for (guint i = 0; i < names->len; i++) {
        QomNode child;

        if (!node_child(n, names->pdata[i], &child)) {
            continue;
        }
        path[depth] = names->pdata[i];
        match_partial(&child, path, depth + 1, parts, nparts, count, found);
        node_clear(&child);
    }
}

/*
 * Resolve @path into *@out; false when nothing (or, for a partial path,
 * more than one node) matches, with *@ambiguous saying which.
 */
static bool resolve(const char *path, QomNode *out, bool *ambiguous)
{
    g_auto(GStrv) split = g_strsplit(path, "/", -1);
    g_autoptr(GPtrArray) parts = g_ptr_array_new();
    QomNode root = { .kind = QOM_ROOT };

    *ambiguous = false;
    for (guint i = 0; split[i]; i++) {
        if (split[i][0]) {
            g_ptr_array_add(parts, split[i]);
        }
    }
    if (path[0] == '/') {
        QomNode cur = root;

        for (guint i = 0; i < parts->len; i++) {
            QomNode next;

            if (!node_child(&cur, parts->pdata[i], &next)) {
                node_clear(&cur);
                return false;
            }
            node_clear(&cur);
            cur = next;
        }
        *out = cur;
        return true;
    } else {
        char *stack[8];         /* the tree is 3 deep */
        guint count = 0;

        if (parts->len == 0 || parts->len > 3) {
            return false;
        }
        match_partial(&root, stack, 0, (char **)parts->pdata, parts->len,
                      &count, out);
        if (count > 1) {
            node_clear(out);
            *ambiguous = true;
            return false;
        }
        return count == 1;
    }
}

static bool resolve_or_fail(const char *path, QomNode *out, bool say_ambiguous,
                            GError **errp)
{
    bool ambiguous;

    if (resolve(path, out, &ambiguous)) {
        return true;
    }
    if (ambiguous && say_ambiguous) {
        bd_error_setg(errp, "Path '%s' is ambiguous", path);
    } else {
        g_set_error(errp, BD_ERROR, BD_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found", path);
    }
    return false;
}

/* ---- the commands ---- */

static void add_info(JsonArray *list, const char *name, const char *type)
{
    JsonObject *info = json_object_new();

    json_object_set_string_member(info, "name", name);
    json_object_set_string_member(info, "type", type);
    json_array_add_object_element(list, info);
}

static const BdObjectProperty *find_property(BdObject *obj,
                                             const char *name)
{
    const BdObjectProperty *p = bd_object_type_of(obj)->properties;

    for (; p && p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

JsonArray *bd_qom_list(const char *path, GError **errp)
{
    QomNode n;
    JsonArray *list;

    if (!resolve_or_fail(path, &n, true, errp)) {
        return NULL;
    }
    list = json_array_new();
    /* every QOM object has its type name as a property */
    add_info(list, "type", "string");
    if (n.kind == QOM_OBJECT) {
        const BdObjectProperty *p = bd_object_type_of(n.obj)->properties;

        for (; p && p->name; p++) {
            add_info(list, p->name, p->type);
        }
    } else if (n.kind == QOM_CHILD) {
        g_autoptr(JsonArray) props = n.container->child_properties(n.id);

        for (guint i = 0; i < json_array_get_length(props); i++) {
            json_array_add_element(list, json_array_dup_element(props, i));
        }
    } else {
        g_autoptr(GPtrArray) names = node_children(&n);

        for (guint i = 0; i < names->len; i++) {
            QomNode child;
            g_autofree char *type = NULL;

            if (!node_child(&n, names->pdata[i], &child)) {
                continue;
            }
            type = g_strdup_printf("child<%s>", node_type(&child));
            add_info(list, names->pdata[i], type);
            node_clear(&child);
        }
    }
    node_clear(&n);
    return list;
}

/*
 * A container's child as a property: QEMU's child<> property reads as
 * the child's canonical path.  NULL when @n has no child @name.
 */
static JsonNode *child_link(const char *path, const QomNode *n,
                            const char *name)
{
    QomNode child;
    g_autofree char *canon = NULL;

    if (n->kind == QOM_OBJECT || n->kind == QOM_CHILD ||
        !node_child(n, name, &child)) {
        return NULL;
    }
    if (n->kind == QOM_ROOT) {
        canon = g_strdup_printf("/%s", name);
    } else {
        canon = g_strdup_printf("/%s/%s", n->kind == QOM_OBJECTS ? "objects"
                                : n->container->name, name);
    }
    node_clear(&child);
    return json_node_init_string(json_node_alloc(), canon);
}

JsonNode *bd_qom_get(const char *path, const char *prop, GError **errp)
{
    QomNode n;
    JsonNode *ret = NULL;

    /* qom-get and qom-set say "not found" for an ambiguous path too */
    if (!resolve_or_fail(path, &n, false, errp)) {
        return NULL;
    }
    if (strcmp(prop, "type") == 0) {
        ret = json_node_init_string(json_node_alloc(), node_type(&n));
    } else if (n.kind == QOM_OBJECT && find_property(n.obj, prop)) {
        const BdObjectProperty *p = find_property(n.obj, prop);

        if (p->get) {
            ret = p->get(n.obj, errp);
        } else {
            bd_error_setg(errp, "Property '%s.%s' is not readable",
                          node_type(&n), prop);
        }
    } else if (n.kind == QOM_CHILD &&
               (ret = n.container->child_get(n.id, prop))) {
        /* found */
    } else if ((ret = child_link(path, &n, prop))) {
        /* a container's child: its path */
    } else {
        bd_error_setg(errp, "Property '%s.%s' not found", node_type(&n),
                      prop);
    }
    node_clear(&n);
    return ret;
}

bool bd_qom_set(const char *path, const char *prop, JsonNode *value,
                GError **errp)
{
    QomNode n;
    const BdObjectProperty *p = NULL;
    bool exists, ok = false;
    g_autoptr(JsonNode) link = NULL;

    if (!resolve_or_fail(path, &n, false, errp)) {
        return false;
    }
    if (n.kind == QOM_OBJECT) {
        p = find_property(n.obj, prop);
    }
    if (n.kind == QOM_CHILD) {
        g_autoptr(JsonNode) v = n.container->child_get(n.id, prop);

        exists = v != NULL;
    } else {
        link = child_link(path, &n, prop);
        exists = p || link;
    }
    exists = exists || strcmp(prop, "type") == 0;
    if (!exists) {
        bd_error_setg(errp, "Property '%s.%s' not found", node_type(&n),
                      prop);
    } else if (!p || !p->set) {
        bd_error_setg(errp, "Property '%s.%s' is not writable",
                      node_type(&n), prop);
    } else {
        ok = p->set(n.obj, value, errp);
    }
    node_clear(&n);
    return ok;
}

/* ---- for BdObjectProperty's set() ---- */

static bool value_of_type(JsonNode *value, GType type)
{
    return value && JSON_NODE_HOLDS_VALUE(value) &&
           json_node_get_value_type(value) == type;
}

bool bd_object_property_int(JsonNode *value, const char *name,
                            int64_t *out, GError **errp)
{
    if (!value_of_type(value, G_TYPE_INT64)) {
        bd_error_setg(errp, "Invalid parameter type for '%s', expected: "
                      "integer", name);
        return false;
    }
    *out = json_node_get_int(value);
    return true;
}

bool bd_object_property_str(JsonNode *value, const char *name,
                            const char **out, GError **errp)
{
    if (!value_of_type(value, G_TYPE_STRING)) {
        bd_error_setg(errp, "Invalid parameter type for '%s', expected: "
                      "string", name);
        return false;
    }
    *out = json_node_get_string(value);
    return true;
}

bool bd_object_property_bool(JsonNode *value, const char *name, bool *out,
                             GError **errp)
{
    if (!value_of_type(value, G_TYPE_BOOLEAN)) {
        bd_error_setg(errp, "Invalid parameter type for '%s', expected: "
                      "boolean", name);
        return false;
    }
    *out = json_node_get_boolean(value);
    return true;
}
