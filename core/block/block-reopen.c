/*
 * blockdev-reopen: give existing nodes a new set of options, all of them
 * or none.
 *
 * The core handles the options every node has (read-only,
 * auto-read-only, cache, discard, detect-zeroes; force-share cannot
 * change).  A driver's own options may change only when the driver has
 * reopen_prepare (it then checks the whole new set and keeps what it
 * needs in its state until reopen_commit or reopen_abort); without it a
 * changed option is refused with QEMU's "Cannot change the option"
 * message.  A protocol driver without reopen_prepare may hold host
 * resources opened with the old flags, so changing its common options is
 * refused too.  As in QEMU, common options left out go back to their
 * defaults, and driver options left out are not checked.
 * Replacing or redefining a child ("file" naming another node or an
 * inline definition) is not supported yet and refused.
 */
#include <string.h>

#include <blockd/error.h>
#include <blockd/json.h>

#include "block/block-qmp.h"

typedef struct Reopen {
    BdNode *node;
    JsonObject *options;        /* the new BlockdevOptions (ref) */
    bool read_only;
    unsigned open_flags;
    BdDetectZeroes detect_zeroes;
    /* saved for the rollback */
    bool old_read_only;
    unsigned old_open_flags;
    BdDetectZeroes old_detect_zeroes;
    void *drv_state;
    bool prepared;              /* drv->reopen_prepare succeeded */
} Reopen;

static const char *const common_options[] = {
    "driver", "node-name", "discard", "cache", "read-only",
    "auto-read-only", "force-share", "detect-zeroes",
};

static bool is_common_option(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(common_options); i++) {
        if (strcmp(common_options[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* The new common options into flags, as open does. */
static bool parse_common(Reopen *r, GError **errp)
{
    JsonObject *o = r->options;
    JsonObject *cache = json_object_has_member(o, "cache") ?
        json_object_get_object_member(o, "cache") : NULL;
    const char *dz = bd_json_get_str(o, "detect-zeroes", NULL);
    bool ro = bd_json_get_bool(o, "read-only", false);

    if (g_strcmp0(bd_json_get_str(o, "driver", NULL),
                  r->node->drv->name) != 0) {
        bd_error_setg(errp, "Cannot change the option 'driver'");
        return false;
    }
    r->read_only = ro;
    r->open_flags = ro ? 0 : BD_OPEN_RDWR;
    if (bd_json_get_bool(cache, "direct", false)) {
        r->open_flags |= BD_OPEN_CACHE_DIRECT;
    }
    if (bd_json_get_bool(cache, "no-flush", false)) {
        r->open_flags |= BD_OPEN_NO_FLUSH;
    }
    if (g_strcmp0(bd_json_get_str(o, "discard", NULL), "unmap") == 0) {
        r->open_flags |= BD_OPEN_UNMAP;
    }
    if (bd_json_get_bool(o, "auto-read-only", false)) {
        r->open_flags |= BD_OPEN_AUTO_READ_ONLY;
    }
    if (bd_json_get_bool(o, "force-share", false) !=
        !!(r->node->open_flags & BD_OPEN_FORCE_SHARE)) {
        bd_error_setg(errp, "Cannot change the option 'force-share'");
        return false;
    }
    r->open_flags |= r->node->open_flags & BD_OPEN_FORCE_SHARE;
    r->detect_zeroes = BD_DETECT_ZEROES_OFF;
    if (g_strcmp0(dz, "on") == 0) {
        r->detect_zeroes = BD_DETECT_ZEROES_ON;
    } else if (g_strcmp0(dz, "unmap") == 0) {
        if (!(r->open_flags & BD_OPEN_UNMAP)) {
            bd_error_setg(errp,
                          "setting detect-zeroes to unmap is not allowed "
                          "without setting discard operation to unmap");
            return false;
        }
        r->detect_zeroes = BD_DETECT_ZEROES_UNMAP;
    }
    return true;
}

/*
 * The first of the driver's own options given with a value other than
 * the current one (NULL: none).  A child given by the name of the node it
 * already is counts as unchanged.
 */
static const char *changed_driver_option(Reopen *r, GError **errp,
                                         bool *failed)
{
    g_autoptr(GList) names = json_object_get_members(r->options);

    *failed = false;
    for (GList *l = names; l; l = l->next) {
        const char *name = l->data;
        JsonNode *new = json_object_get_member(r->options, name);
        JsonNode *old = json_object_get_member(r->node->options, name);

        if (is_common_option(name)) {
            continue;
        }
        for (guint i = 0; i < r->node->children->len; i++) {
            BdChild *c = r->node->children->pdata[i];

            if (strcmp(c->name, name) != 0) {
                continue;
            }
            if (JSON_NODE_HOLDS_VALUE(new) &&
                json_node_get_value_type(new) == G_TYPE_STRING &&
                strcmp(json_node_get_string(new), c->node->node_name) == 0) {
                goto next;
            }
            bd_error_setg(errp,
                          "blockdev-reopen cannot replace or redefine the "
                          "'%s' child of node '%s' yet; name its current "
                          "node '%s'", name, r->node->node_name,
                          c->node->node_name);
            *failed = true;
            return NULL;
        }
        if (!old || !json_node_equal(old, new)) {
            return name;
        }
next:
        ;
    }
    return NULL;
}

static bool prepare(Reopen *r, GError **errp)
{
    const BdBlockDriver *drv = r->node->drv;
    const char *changed;
    bool failed;

    if (!parse_common(r, errp)) {
        return false;
    }
    changed = changed_driver_option(r, errp, &failed);
    if (failed) {
        return false;
    }
    if (drv->reopen_prepare) {
        if (!drv->reopen_prepare(r->node, r->options, &r->drv_state, errp)) {
            return false;
        }
        r->prepared = true;
        return true;
    }
    if (changed) {
        bd_error_setg(errp, "Cannot change the option '%s'", changed);
        return false;
    }
    if (!(drv->flags & (BD_DRIVER_FORMAT | BD_DRIVER_FILTER)) &&
        (r->open_flags != r->node->open_flags ||
         r->read_only != r->node->read_only)) {
        bd_error_setg(errp,
                      "Block format '%s' used by node '%s' does not support "
                      "reopening files", drv->name, r->node->node_name);
        return false;
    }
    return true;
}

static void apply_flags(Reopen *r, bool new)
{
    r->node->read_only = new ? r->read_only : r->old_read_only;
    r->node->open_flags = new ? r->open_flags : r->old_open_flags;
    r->node->detect_zeroes = new ? r->detect_zeroes : r->old_detect_zeroes;
}

/*
 * A writable node that would turn read-only under its writers: QEMU
 * words this differently from a node that was read-only already.
 */
static bool check_writers(Reopen *r, GError **errp)
{
    if (r->read_only && !r->old_read_only &&
        (r->node->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        bd_error_setg(errp,
                      "Read-only block node '%s' cannot support read-write "
                      "users", r->node->node_name);
        return false;
    }
    return true;
}

static void reopen_free(gpointer p)
{
    Reopen *r = p;

    json_object_unref(r->options);
    g_free(r);
}

/* Queue @options for its node; a node named twice takes the last. */
static bool queue_add(GPtrArray *queue, JsonObject *options, GError **errp)
{
    const char *name = bd_json_get_str(options, "node-name", NULL);
    BdNode *node;
    Reopen *r;

    if (!name) {
        bd_error_setg(errp, "node-name not specified");
        return false;
    }
    node = bd_node_find(name);
    if (!node) {
        bd_error_setg(errp, "Failed to find node with node-name='%s'", name);
        return false;
    }
    for (guint i = 0; i < queue->len; i++) {
        r = queue->pdata[i];
        if (r->node == node) {
            json_object_unref(r->options);
            r->options = json_object_ref(options);
            return true;
        }
    }
    r = g_new0(Reopen, 1);
    r->node = node;
    r->options = json_object_ref(options);
    r->old_read_only = node->read_only;
    r->old_open_flags = node->open_flags;
    r->old_detect_zeroes = node->detect_zeroes;
    g_ptr_array_add(queue, r);
    return true;
}

/*
 * A committed driver change may change the node's alignment (a file
 * reopened with or without O_DIRECT), and parents take their children's
 * limits.
 */
static void refresh_limits_up(BdNode *node)
{
    g_autoptr(GError) err = NULL;

    if (!bd_node_refresh_limits(node, &err)) {
        g_warning("%s: %s", node->node_name, err->message);
        return;
    }
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->parent) {
            refresh_limits_up(c->parent);
        }
    }
}

bool bd_qmp_blockdev_reopen(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonArray *list = json_object_get_array_member(args, "options");
    g_autoptr(GPtrArray) queue = g_ptr_array_new_with_free_func(reopen_free);
    guint n = json_array_get_length(list);
    guint prepared = 0;
    bool ok = true;

    for (guint i = 0; i < n; i++) {
        if (!queue_add(queue, json_array_get_object_element(list, i), errp)) {
            return false;
        }
    }
    for (guint i = 0; i < queue->len; i++) {
        bd_node_drained_begin(((Reopen *)queue->pdata[i])->node);
    }
    for (; ok && prepared < queue->len; prepared++) {
        ok = prepare(queue->pdata[prepared], errp);
    }
    if (ok) {
        /* the new flags all at once, then the users' permissions */
        for (guint i = 0; i < queue->len; i++) {
            apply_flags(queue->pdata[i], true);
        }
        for (guint i = 0; ok && i < queue->len; i++) {
            ok = check_writers(queue->pdata[i], errp) &&
                 bd_node_refresh_perms(((Reopen *)queue->pdata[i])->node,
                                       errp);
        }
        if (!ok) {
            for (guint i = 0; i < queue->len; i++) {
                apply_flags(queue->pdata[i], false);
            }
            for (guint i = 0; i < queue->len; i++) {
                bd_node_refresh_perms(((Reopen *)queue->pdata[i])->node,
                                      NULL);
            }
        }
    }
    for (guint i = 0; i < queue->len; i++) {
        Reopen *r = queue->pdata[i];

        if (ok) {
            if (r->prepared && r->node->drv->reopen_commit) {
                r->node->drv->reopen_commit(r->node, r->drv_state);
            }
            if (r->prepared) {
                refresh_limits_up(r->node);
            }
            json_object_unref(r->node->options);
            r->node->options = json_object_ref(r->options);
        } else if (r->prepared && r->node->drv->reopen_abort) {
            r->node->drv->reopen_abort(r->node, r->drv_state);
        }
    }
    for (guint i = queue->len; i-- > 0;) {
        bd_node_drained_end(((Reopen *)queue->pdata[i])->node);
    }
    return ok;
}
