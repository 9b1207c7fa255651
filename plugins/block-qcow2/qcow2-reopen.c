/*
 * block-qcow2: blockdev-reopen between read-only and read-write, as
 * QEMU 7.2's qcow2 does it.
 *
 * Going read-only writes the metadata caches back and clears the dirty
 * bit in prepare, while the node may still write (a failure refuses the
 * reopen; an image left clean but writable is harmless, the next write
 * marks it dirty again).  Going read-write is decided at commit, when
 * the node and its file may write: an image left dirty by lazy refcounts
 * is repaired then, as a writable open repairs it.  The driver's own
 * options cannot change yet: a change is refused with QEMU's message,
 * never ignored.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

/* Options the core handles, and children it checks itself. */
static const char *const not_ours[] = {
    "driver", "node-name", "discard", "cache", "read-only",
    "auto-read-only", "force-share", "detect-zeroes",
    "file", "backing", "data-file",
};

static bool is_ours(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(not_ours); i++) {
        if (!strcmp(not_ours[i], name)) {
            return false;
        }
    }
    return true;
}

static bool opt_bool(JsonObject *o, const char *name, bool dflt)
{
    return json_object_has_member(o, name) ?
           json_object_get_boolean_member(o, name) : dflt;
}

typedef struct ReopenCo {
    Qcow2State *s;
    int ret;
    GError **errp;
} ReopenCo;

static void to_read_only_co(void *opaque)
{
    ReopenCo *r = opaque;
    Qcow2State *s = r->s;

    bd_co_mutex_lock(&s->meta_lock);
    /* the bitmaps are stored and become read-only, as in QEMU */
    r->ret = qcow2_reopen_bitmaps_ro(s, r->errp);
    if (r->ret == 0) {
        r->ret = qcow2_write_caches(s);
    }
    if (r->ret == 0) {
        r->ret = bd_child_co_flush(s->file);
    }
    if (r->ret == 0) {
        r->ret = qcow2_mark_clean(s);
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

bool qcow2_reopen_prepare(BdNode *node, JsonObject *options, void **state,
                          GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);
    g_autoptr(GList) names = json_object_get_members(options);
    bool ro = opt_bool(options, "read-only", false);

    for (GList *l = names; l; l = l->next) {
        const char *name = l->data;
        JsonNode *old = json_object_get_member(s->opts, name);

        if (!is_ours(name)) {
            continue;
        }
        if (!old || !json_node_equal(old,
                                     json_object_get_member(options, name))) {
            bd_error_setg(errp, "Cannot change the option '%s'", name);
            return false;
        }
    }
    if (!ro && s->read_only) {
        /* what a writable open refuses, a reopen to writable refuses */
        if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
            bd_error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                        "read/write");
            return false;
        }
    }
    if (ro && !s->read_only && !qcow2_unusable(s)) {
        ReopenCo r = { s, 0, errp };

        bd_run_co(to_read_only_co, &r);
        if (r.ret < 0) {
            if (!*errp) {
                bd_error_setg(errp, "Could not write the qcow2 metadata "
                              "back: %s", g_strerror(-r.ret));
            }
            return false;
        }
        /* an abort must put the in-use flags back: see reopen_abort */
        s->bitmaps_stored_ro = true;
    }
    *state = json_object_ref(options);
    return true;
}

static void to_read_write_co(void *opaque)
{
    ReopenCo *r = opaque;
    Qcow2State *s = r->s;
    g_autoptr(GError) err = NULL;

    bd_co_mutex_lock(&s->meta_lock);
    r->ret = 0;
    if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
        r->ret = qcow2_repair_dirty(s, &err);
        if (r->ret < 0) {
            g_warning("qcow2: could not repair the dirty image on reopen: "
                      "%s", err ? err->message : g_strerror(-r->ret));
        }
    }
    if (r->ret == 0) {
        r->ret = qcow2_reopen_bitmaps_rw(s, &err);
        if (r->ret < 0) {
            g_warning("qcow2: %s", err->message);
        }
    }
    if (r->ret == 0 && (s->autoclear & ~QCOW2_AUTOCLEAR_MASK)) {
        r->ret = qcow2_write_autoclear(s,
                                       s->autoclear & QCOW2_AUTOCLEAR_MASK);
        if (r->ret == 0) {
            r->ret = bd_child_co_flush(s->file);
        }
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

void qcow2_reopen_commit(BdNode *node, void *state)
{
    Qcow2State *s = bd_node_get_opaque(node);
    bool ro = bd_node_is_read_only(node);

    s->bitmaps_stored_ro = false;
    json_object_unref(s->opts);
    s->opts = state;
    if (s->read_only && !ro) {
        ReopenCo r = { s, 0 };

        s->read_only = false;
        bd_run_co(to_read_write_co, &r);
        if (r.ret < 0) {
            /*
             * Stale refcounts would hand out clusters in use: the node
             * refuses I/O rather than corrupt the image.
             */
            __atomic_store_n(&s->unusable, true, __ATOMIC_RELEASE);
        }
    } else {
        s->read_only = ro;
    }
}

static void bitmaps_back_co(void *opaque)
{
    ReopenCo *r = opaque;
    g_autoptr(GError) err = NULL;

    bd_co_mutex_lock(&r->s->meta_lock);
    r->ret = qcow2_reopen_bitmaps_rw(r->s, &err);
    bd_co_mutex_unlock(&r->s->meta_lock);
    if (r->ret < 0) {
        g_warning("qcow2: %s", err->message);
    }
}

void qcow2_reopen_abort(BdNode *node, void *state)
{
    Qcow2State *s = bd_node_get_opaque(node);

    json_object_unref(state);
    if (s->bitmaps_stored_ro) {
        /* still writable: the stored bitmaps are in use again */
        ReopenCo r = { s, 0, NULL };

        s->bitmaps_stored_ro = false;
        bd_run_co(bitmaps_back_co, &r);
    }
}
