/*
 * block-qcow2: blockdev-reopen, as QEMU 7.2's qcow2 does it.
 *
 * The driver's own options are read anew (an option left out takes its
 * default again): lazy-refcounts, pass-discard-*, overlap-check, the
 * cache sizes and cache-clean-interval, with the checks and messages of
 * an open.  Prepare writes the metadata caches back and makes the new
 * ones (a failure refuses the reopen, nothing changed); commit swaps
 * them in.  Turning lazy refcounts off writes the caches back and clears
 * the dirty bit first, as QEMU's qcow2_mark_clean() does.
 *
 * Going read-only writes the metadata caches back and clears the dirty
 * bit in prepare, while the node may still write (a failure refuses the
 * reopen; an image left clean but writable is harmless, the next write
 * marks it dirty again).  Going read-write is decided at commit, when
 * the node and its file may write: an image left dirty by lazy refcounts
 * is repaired then, as a writable open repairs it.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

/* What prepare made for commit to install. */
typedef struct Qcow2Reopen {
    JsonObject *opts;
    Qcow2RuntimeOpts rt;
    Qcow2Cache *l2_cache;
    Qcow2Cache *refcount_cache;
} Qcow2Reopen;

static void reopen_free(Qcow2Reopen *r)
{
    qcow2_cache_free(r->l2_cache);
    qcow2_cache_free(r->refcount_cache);
    json_object_unref(r->opts);
    g_free(r);
}

typedef struct ReopenCo {
    Qcow2State *s;
    int ret;
    const char *which;      /* the cache that failed to flush */
} ReopenCo;

static void to_read_only_co(void *opaque)
{
    ReopenCo *r = opaque;
    Qcow2State *s = r->s;

    bd_co_mutex_lock(&s->meta_lock);
    r->ret = qcow2_write_caches(s);
    if (r->ret == 0) {
        r->ret = bd_child_co_flush(s->file);
    }
    if (r->ret == 0) {
        r->ret = qcow2_mark_clean(s);
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

static void flush_caches_co(void *opaque)
{
    ReopenCo *r = opaque;
    Qcow2State *s = r->s;

    bd_co_mutex_lock(&s->meta_lock);
    r->ret = qcow2_cache_flush(s->l2_cache);
    r->which = "L2 table";
    if (r->ret == 0) {
        r->ret = qcow2_cache_flush(s->refcount_cache);
        r->which = "refcount block";
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

static void mark_clean_co(void *opaque)
{
    ReopenCo *r = opaque;
    Qcow2State *s = r->s;

    bd_co_mutex_lock(&s->meta_lock);
    r->ret = qcow2_mark_clean(s);
    bd_co_mutex_unlock(&s->meta_lock);
}

bool qcow2_reopen_prepare(BdNode *node, JsonObject *options, void **state,
                          GError **errp)
{
    Qcow2State *s = bd_node_get_opaque(node);
    bool ro = bd_json_get_bool(options, "read-only", false);
    unsigned flags = g_strcmp0(bd_json_get_str(options, "discard", NULL),
                               "unmap") == 0 ? BD_OPEN_UNMAP : 0;
    Qcow2Reopen *r = g_new0(Qcow2Reopen, 1);
    bool writable = !s->read_only && !qcow2_unusable(s);

    r->opts = json_object_ref(options);
    if (!qcow2_parse_runtime_opts(s, options, flags, &r->rt, errp)) {
        goto fail;
    }
    if (json_object_has_member(options, "encrypt")) {
        /* the image has none: encrypted ones do not open */
        bd_error_setg(errp, "No encryption in image header, but options "
                      "specified format '%s'",
                      bd_json_get_str(bd_json_get_object(options, "encrypt"),
                                      "format", ""));
        goto fail;
    }
    if (!ro && s->read_only) {
        /* what a writable open refuses, a reopen to writable refuses */
        if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
            bd_error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                        "read/write");
            goto fail;
        }
        if (s->nb_bitmaps && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
            bd_error_setg(errp, "qcow2: persistent dirty bitmaps are not supported "
                        "yet: the image has %u; open it read-only",
                        s->nb_bitmaps);
            goto fail;
        }
    }
    if (writable) {
        ReopenCo c = { s, 0, NULL };

        /* the new caches start empty: nothing may be lost with the old */
        bd_run_co(flush_caches_co, &c);
        if (c.ret < 0) {
            bd_error_setg(errp, "Failed to flush the %s cache: %s", c.which,
                          g_strerror(-c.ret));
            goto fail;
        }
        if (s->use_lazy_refcounts && !r->rt.lazy_refcounts) {
            bd_run_co(mark_clean_co, &c);
            if (c.ret < 0) {
                bd_error_setg(errp, "Failed to disable lazy refcounts: %s",
                              g_strerror(-c.ret));
                goto fail;
            }
        }
    }
    if (ro && writable) {
        ReopenCo c = { s, 0, NULL };

        bd_run_co(to_read_only_co, &c);
        if (c.ret < 0) {
            bd_error_setg(errp, "Could not write the qcow2 metadata back: %s",
                        g_strerror(-c.ret));
            goto fail;
        }
    }
    r->l2_cache = qcow2_cache_new(s->file, r->rt.l2_cache_entries,
                                  r->rt.l2_entry_size);
    r->refcount_cache = qcow2_cache_new(s->file,
                                        r->rt.refcount_cache_entries,
                                        s->cluster_size);
    if (!r->l2_cache || !r->refcount_cache) {
        bd_error_setg(errp, "Could not allocate metadata caches");
        goto fail;
    }
    *state = r;
    return true;

fail:
    reopen_free(r);
    return false;
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
    if (r->ret == 0 && (s->autoclear & ~QCOW2_AUTOCLEAR_MASK)) {
        r->ret = qcow2_write_autoclear(s,
                                       s->autoclear & QCOW2_AUTOCLEAR_MASK);
        if (r->ret == 0) {
            r->ret = bd_child_co_flush(s->file);
        }
    }
    bd_co_mutex_unlock(&s->meta_lock);
}

/* Install what prepare made: the options, the new caches. */
static void apply(Qcow2State *s, BdNode *node, Qcow2Reopen *r)
{
    Qcow2RuntimeOpts *rt = &r->rt;

    /* the cleaning timer touches the caches: none while they change */
    qcow2_clean_timer_stop(s);
    json_object_unref(s->opts);
    s->opts = g_steal_pointer(&r->opts);
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->refcount_cache);
    s->l2_cache = g_steal_pointer(&r->l2_cache);
    s->refcount_cache = g_steal_pointer(&r->refcount_cache);
    s->l2_slice_size = rt->l2_entry_size / s->l2_entry_size;
    s->use_lazy_refcounts = rt->lazy_refcounts;
    if (!s->use_lazy_refcounts) {
        /* refcounts reach the disk before the mappings that need them */
        qcow2_cache_set_depends(s->l2_cache, s->refcount_cache);
    }
    s->discard_passthrough_request = rt->pass_discard_request;
    s->discard_passthrough_snapshot = rt->pass_discard_snapshot;
    s->discard_passthrough_other = rt->pass_discard_other;
    s->overlap_check = rt->overlap_check;
    s->cache_clean_interval = rt->cache_clean_interval;
    qcow2_clean_timer_start(s, bd_node_get_aio_context(node));
}

void qcow2_reopen_commit(BdNode *node, void *state)
{
    Qcow2State *s = bd_node_get_opaque(node);
    bool ro = bd_node_is_read_only(node);

    apply(s, node, state);
    reopen_free(state);
    if (s->read_only && !ro) {
        ReopenCo r = { s, 0, NULL };

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

void qcow2_reopen_abort(BdNode *node, void *state)
{
    (void)node;
    reopen_free(state);
}
