/*
 * object-authz: the authorization object types authz-simple, authz-list
 * and authz-listfile, which other plugins (the TLS code, checking a
 * client certificate's distinguished name) consult through the "authz"
 * interface of <blockd/authz.h>.
 *
 * The decisions are QEMU's: authz-simple lets in one identity; authz-list
 * tries its rules in order, the first match deciding, and falls back to
 * its policy; 'glob' rules match with g_pattern_match_simple() ('*' and
 * '?' only), as QEMU does.  authz-listfile reads an authz-list from a JSON
 * file and, with 'refresh', reads it again whenever inotify says the file
 * was written or put in place.  Like QEMU, a reload that fails reports
 * the error and leaves the object without rules: it then refuses every
 * identity until a later reload succeeds.
 *
 * qemu-storage-daemon 7.2 cannot create authz-listfile objects (its schema
 * says 'authz-listfile' but its type is called 'authz-list-file'), so its
 * messages are taken from QEMU's code rather than compared.
 */
#include <errno.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <glib-unix.h>

#include <blockd/blockd.h>

#include "object-authz-schema.h"

#define AUTHZ_PARENT "authz"

typedef struct AuthzRule {
    char *match;
    bool allow;
    bool glob;
    bool has_format;    /* given, so qom-get shows it */
} AuthzRule;

/* The rules and default of an authz-list, also as read from a file. */
typedef struct AuthzList {
    bool allow_by_default;
    GArray *rules;      /* of AuthzRule */
} AuthzList;

typedef struct AuthzObject {
    /* authz-simple */
    char *identity;

    /* authz-list, and authz-listfile while its file was read successfully */
    AuthzList *list;

    /* authz-listfile */
    char *filename;
    bool refresh;
    char *basename;     /* of @filename, matched against inotify events */
    int inotify_fd;
    guint inotify_source;
} AuthzObject;

static void authz_rule_clear(gpointer p)
{
    AuthzRule *rule = p;

    g_free(rule->match);
}

static void authz_list_free(AuthzList *list)
{
    if (list) {
        g_array_unref(list->rules);
        g_free(list);
    }
}

static AuthzList *authz_list_new(void)
{
    AuthzList *list = g_new0(AuthzList, 1);

    list->rules = g_array_new(false, true, sizeof(AuthzRule));
    g_array_set_clear_func(list->rules, authz_rule_clear);
    return list;
}

static bool authz_list_decide(AuthzList *list, const char *identity)
{
    for (guint i = 0; i < list->rules->len; i++) {
        AuthzRule *rule = &g_array_index(list->rules, AuthzRule, i);
        bool match = rule->glob ? g_pattern_match_simple(rule->match, identity)
                                : !strcmp(rule->match, identity);

        if (match) {
            return rule->allow;
        }
    }
    return list->allow_by_default;
}

/* ---- reading an authz-list's properties with QEMU's messages ---- */

static void error_type(GError **errp, const char *name, const char *want)
{
    bd_error_setg(errp,
                  "Invalid parameter type for '%s', expected: %s", name, want);
}

/* A string member @key of @obj, or NULL with @errp set; @path names it. */
static const char *get_string(JsonObject *obj, const char *key,
                              const char *path, bool optional, bool *present,
                              GError **errp)
{
    JsonNode *node = json_object_get_member(obj, key);

    *present = node != NULL;
    if (!node) {
        if (!optional) {
            bd_error_setg(errp, "Parameter '%s' is missing", path);
        }
        return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING) {
        error_type(errp, path, "string");
        return NULL;
    }
    return json_node_get_string(node);
}

/*
 * An enum member: *@first when its value is @v0, false when @v1.  QEMU
 * names only the member (not its path) when the value is not one of them.
 */
static bool get_choice(JsonObject *obj, const char *key, const char *path,
                       bool optional, const char *v0, const char *v1,
                       bool *first, GError **errp)
{
    bool present;
    const char *value = get_string(obj, key, path, optional, &present, errp);

    if (!value) {
        return optional && !present;
    }
    if (!strcmp(value, v0) || !strcmp(value, v1)) {
        *first = !strcmp(value, v0);
        return true;
    }
    bd_error_setg(errp,
                  "Parameter '%s' does not accept value '%s'", key, value);
    return false;
}

static bool parse_rule(JsonNode *node, guint index, AuthzRule *rule,
                       GError **errp)
{
    g_autofree char *prefix = g_strdup_printf("rules[%u]", index);
    g_autofree char *path = NULL;
    g_autoptr(GList) members = NULL;
    JsonObject *obj;
    const char *match;
    bool present, glob = false;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_type(errp, prefix, "object");
        return false;
    }
    obj = json_node_get_object(node);

    path = g_strdup_printf("%s.match", prefix);
    match = get_string(obj, "match", path, false, &present, errp);
    if (!match) {
        return false;
    }
    g_free(path);
    path = g_strdup_printf("%s.policy", prefix);
    if (!get_choice(obj, "policy", path, false, "allow", "deny",
                    &rule->allow, errp)) {
        return false;
    }
    g_free(path);
    path = g_strdup_printf("%s.format", prefix);
    if (!get_choice(obj, "format", path, true, "glob", "exact", &glob,
                    errp)) {
        return false;
    }
    members = json_object_get_members(obj);
    for (GList *l = members; l; l = l->next) {
        if (strcmp(l->data, "match") && strcmp(l->data, "policy") &&
            strcmp(l->data, "format")) {
            bd_error_setg(errp, "Parameter '%s.%s' is unexpected", prefix,
                          (const char *)l->data);
            return false;
        }
    }
    rule->match = g_strdup(match);
    rule->glob = glob;
    rule->has_format = json_object_has_member(obj, "format");
    return true;
}

/*
 * Fill @list from the members of an authz-list (object-add's validated
 * properties, or a file's object, which is checked here as QEMU's QOM
 * property setters check it: members in the object's order).
 */
static bool authz_list_parse(AuthzList *list, JsonObject *props,
                             GError **errp)
{
    g_autoptr(GList) members = json_object_get_members(props);

    for (GList *l = members; l; l = l->next) {
        const char *name = l->data;
        JsonNode *node = json_object_get_member(props, name);

        if (!strcmp(name, "policy")) {
            if (!get_choice(props, "policy", "policy", false, "allow", "deny",
                            &list->allow_by_default, errp)) {
                return false;
            }
        } else if (!strcmp(name, "rules")) {
            JsonArray *array;

            if (!JSON_NODE_HOLDS_ARRAY(node)) {
                error_type(errp, "rules", "array");
                return false;
            }
            /* a later 'rules' replaces the earlier ones, as in QEMU */
            g_array_set_size(list->rules, 0);
            array = json_node_get_array(node);
            for (guint i = 0; i < json_array_get_length(array); i++) {
                AuthzRule rule = { 0 };

                if (!parse_rule(json_array_get_element(array, i), i, &rule,
                                errp)) {
                    return false;
                }
                g_array_append_val(list->rules, rule);
            }
        } else {
            bd_error_setg(errp, "Property 'authz-list.%s' not found", name);
            return false;
        }
    }
    return true;
}

/* ---- authz-listfile's file ---- */

static AuthzList *authz_file_load(const char *filename, GError **errp)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonParser) parser = NULL;
    g_autofree char *contents = NULL;
    AuthzList *list;
    JsonNode *root;
    gsize len;

    if (!g_file_get_contents(filename, &contents, &len, &err)) {
        bd_error_setg(errp, "Unable to read '%s': %s", filename, err->message);
        return NULL;
    }
    /* QEMU's parser stops at a NUL; so does this one */
    len = strlen(contents);
    if (!contents[strspn(contents, " \t\r\n")]) {
        bd_error_setg(errp, "Expecting a JSON value");
        return NULL;
    }
    parser = json_parser_new_immutable();
    if (!json_parser_load_from_data(parser, contents, len, &err)) {
        bd_error_setg(errp, "JSON parse error, %s", err->message);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        bd_error_setg(errp, "File '%s' must contain a JSON object", filename);
        return NULL;
    }
    list = authz_list_new();
    if (!authz_list_parse(list, json_node_get_object(root), errp)) {
        authz_list_free(list);
        return NULL;
    }
    return list;
}

static void authz_file_reload(AuthzObject *a)
{
    g_autoptr(GError) err = NULL;

    authz_list_free(a->list);
    a->list = authz_file_load(a->filename, &err);
    if (!a->list) {
        const char *prog = g_get_prgname();

        g_printerr("%s: %s\n", prog ? prog : "blockd", err->message);
    }
}

/*
 * The watched directory changed: reload when our file was written or
 * created there (also by a rename), the events QEMU's file monitor reports
 * as "modified" and "created".
 */
static gboolean authz_file_event(gint fd, GIOCondition cond, gpointer opaque)
{
    AuthzObject *a = opaque;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool reload = false;
    ssize_t n;

    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;  /* EAGAIN: all read; errors: try at the next event */
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;

            if (ev->len && !strcmp(ev->name, a->basename) &&
                (ev->mask & (IN_MODIFY | IN_CREATE | IN_MOVED_TO))) {
                reload = true;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    if (reload) {
        authz_file_reload(a);
    }
    return G_SOURCE_CONTINUE;
}

static bool authz_file_watch(AuthzObject *a, GError **errp)
{
    g_autofree char *dir = g_path_get_dirname(a->filename);

    if (!strcmp(dir, ".")) {
        bd_error_setg(errp, "Filename must be an absolute path");
        return false;
    }
    a->basename = g_path_get_basename(a->filename);
    if (!strcmp(a->basename, ".")) {
        bd_error_setg(errp, "Path has no trailing filename component");
        return false;
    }
    a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->inotify_fd < 0) {
        bd_error_setg(errp,
                      "Unable to initialize inotify: %s", g_strerror(errno));
        return false;
    }
    if (inotify_add_watch(a->inotify_fd, dir,
                          IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_TO |
                          IN_MOVED_FROM | IN_ATTRIB | IN_ONLYDIR) < 0) {
        bd_error_setg(errp,
                      "Unable to watch '%s': %s", dir, g_strerror(errno));
        return false;
    }
    a->inotify_source = g_unix_fd_add(a->inotify_fd, G_IO_IN,
                                      authz_file_event, a);
    return true;
}

/* ---- the three types ---- */

static bool authz_simple_create(BdObject *obj, JsonObject *props,
                                GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    a->inotify_fd = -1;
    a->identity = g_strdup(json_object_get_string_member(props, "identity"));
    return true;
}

static bool authz_list_create(BdObject *obj, JsonObject *props,
                              GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    a->inotify_fd = -1;
    a->list = authz_list_new();
    return authz_list_parse(a->list, props, errp);
}

static bool authz_listfile_create(BdObject *obj, JsonObject *props,
                                  GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    a->inotify_fd = -1;
    a->filename = g_strdup(json_object_get_string_member(props, "filename"));
    /* QEMU refreshes by default where it has inotify, as on Linux */
    a->refresh = json_object_get_boolean_member_with_default(props, "refresh",
                                                             true);
    return true;
}

static bool authz_listfile_complete(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    a->list = authz_file_load(a->filename, errp);
    if (!a->list) {
        return false;
    }
    return !a->refresh || authz_file_watch(a, errp);
}

static void authz_destroy(BdObject *obj)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    if (a->inotify_source) {
        g_source_remove(a->inotify_source);
    }
    if (a->inotify_fd >= 0) {
        close(a->inotify_fd);
    }
    authz_list_free(a->list);
    g_free(a->identity);
    g_free(a->filename);
    g_free(a->basename);
}

static bool authz_is_allowed(BdObject *obj, const char *identity,
                             GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    if (a->identity) {
        return !strcmp(a->identity, identity);
    }
    /* an authz-listfile whose last reload failed refuses everyone */
    return a->list && authz_list_decide(a->list, identity);
}

static const BdAuthzInterface authz_ops = {
    .struct_size = sizeof(BdAuthzInterface),
    .is_allowed = authz_is_allowed,
};

static const BdObjectInterface authz_interfaces[] = {
    { .name = BD_AUTHZ_INTERFACE, .ops = &authz_ops },
    { .name = NULL },
};

/* ---- QOM properties (qom-get, qom-set), live as in QEMU ---- */

static JsonNode *get_identity(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    return json_node_init_string(json_node_alloc(),
                                 a->identity ? a->identity : "");
}

static bool set_identity(BdObject *obj, JsonNode *value, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);
    const char *v;

    if (!bd_object_property_str(value, "identity", &v, errp)) {
        return false;
    }
    g_free(a->identity);
    a->identity = g_strdup(v);
    return true;
}

static const BdObjectProperty authz_simple_properties[] = {
    { "identity", "string", get_identity, set_identity },
    { NULL },
};

static JsonNode *get_policy(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    return json_node_init_string(json_node_alloc(),
                                 a->list->allow_by_default ? "allow"
                                                           : "deny");
}

static JsonNode *get_rules(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);
    JsonArray *list = json_array_new();
    JsonNode *node;

    for (guint i = 0; i < a->list->rules->len; i++) {
        AuthzRule *r = &g_array_index(a->list->rules, AuthzRule, i);
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "match", r->match);
        json_object_set_string_member(o, "policy", r->allow ? "allow"
                                                            : "deny");
        if (r->has_format) {
            json_object_set_string_member(o, "format", r->glob ? "glob"
                                                               : "exact");
        }
        json_array_add_object_element(list, o);
    }
    node = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return node;
}

/* One member through the creation-time parser, into the live list. */
static bool set_list_member(BdObject *obj, const char *name,
                            JsonNode *value, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);
    g_autoptr(JsonObject) props = json_object_new();
    AuthzList *fresh = authz_list_new();

    json_object_set_member(props, name, json_node_copy(value));
    /* parse into a copy: a refused value leaves the list as it was */
    fresh->allow_by_default = a->list->allow_by_default;
    for (guint i = 0; i < a->list->rules->len; i++) {
        AuthzRule r = g_array_index(a->list->rules, AuthzRule, i);

        r.match = g_strdup(r.match);
        g_array_append_val(fresh->rules, r);
    }
    if (!authz_list_parse(fresh, props, errp)) {
        authz_list_free(fresh);
        return false;
    }
    authz_list_free(a->list);
    a->list = fresh;
    return true;
}

static bool set_policy(BdObject *obj, JsonNode *value, GError **errp)
{
    return set_list_member(obj, "policy", value, errp);
}

static bool set_rules(BdObject *obj, JsonNode *value, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    if (set_list_member(obj, "rules", value, errp)) {
        return true;
    }
    /*
     * QEMU frees the old rules before it reads the new ones: a refused
     * value leaves none (the policy then decides for everyone).
     */
    g_array_set_size(a->list->rules, 0);
    return false;
}

static const BdObjectProperty authz_list_properties[] = {
    { "policy", "QAuthZListPolicy", get_policy, set_policy },
    { "rules", "QAuthZListRule", get_rules, set_rules },
    { NULL },
};

/*
 * authz-listfile: as QEMU, the directory to watch and refresh are taken
 * when the object is completed; a new filename is read at the next
 * reload (an event in the watched directory), as QEMU reads it.
 */
static JsonNode *get_filename(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    return json_node_init_string(json_node_alloc(),
                                 a->filename ? a->filename : "");
}

static bool set_filename(BdObject *obj, JsonNode *value, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);
    const char *v;

    if (!bd_object_property_str(value, "filename", &v, errp)) {
        return false;
    }
    g_free(a->filename);
    a->filename = g_strdup(v);
    return true;
}

static JsonNode *get_refresh(BdObject *obj, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    return json_node_init_boolean(json_node_alloc(), a->refresh);
}

static bool set_refresh(BdObject *obj, JsonNode *value, GError **errp)
{
    AuthzObject *a = bd_object_get_opaque(obj);

    return bd_object_property_bool(value, "refresh", &a->refresh, errp);
}

static const BdObjectProperty authz_listfile_properties[] = {
    { "filename", "string", get_filename, set_filename },
    { "refresh", "bool", get_refresh, set_refresh },
    { NULL },
};

static const BdObjectType authz_simple_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "authz-simple",
    .description = "lets in one identity",
    .parent = AUTHZ_PARENT,
    .instance_size = sizeof(AuthzObject),
    .create = authz_simple_create,
    .destroy = authz_destroy,
    .interfaces = authz_interfaces,
    .properties = authz_simple_properties,
};

static const BdObjectType authz_list_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "authz-list",
    .description = "decides by an ordered list of exact or glob rules",
    .parent = AUTHZ_PARENT,
    .instance_size = sizeof(AuthzObject),
    .create = authz_list_create,
    .destroy = authz_destroy,
    .interfaces = authz_interfaces,
    .properties = authz_list_properties,
};

static const BdObjectType authz_listfile_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "authz-listfile",
    .description = "an authz-list read from a JSON file, reread on change",
    .parent = AUTHZ_PARENT,
    .instance_size = sizeof(AuthzObject),
    .create = authz_listfile_create,
    .complete = authz_listfile_complete,
    .destroy = authz_destroy,
    .interfaces = authz_interfaces,
    .properties = authz_listfile_properties,
};

static bool object_authz_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &authz_simple_type, errp) &&
           bd_registry_add_object_type(reg, &authz_list_type, errp) &&
           bd_registry_add_object_type(reg, &authz_listfile_type, errp);
}

BD_PLUGIN(.name = "object-authz",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the authz-simple, authz-list and authz-listfile "
                         "object types",
          .license = "GPL-2.0-or-later",
          .schema = object_authz_schema,
          .init = object_authz_init);
