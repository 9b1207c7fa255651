/*
 * object-iothread: the 'iothread' object type (an event-loop thread that
 * nodes and exports can be placed in), the 'main-loop' object type (the
 * same parameters for the main thread) and the query-iothreads command.
 *
 * Each object owns a BdIOThread created with the object's id, which is how
 * the daemon's bd_iothread_find() hands the thread's context to exports
 * and x-blockdev-set-iothread.
 */
#include <limits.h>
#include <string.h>

#include <blockd/blockd.h>

#include "object-iothread-schema.h"

/* QEMU's defaults for an iothread's event loop. */
#define POLL_MAX_NS_DEFAULT 32768
#define THREAD_POOL_MAX_DEFAULT 64

typedef struct IOThreadObject {
    BdObject *obj;
    BdIOThread *iot;            /* NULL for the main-loop object */
    BdAioContext *ctx;          /* where the parameters apply */
    int64_t poll_max_ns, poll_grow, poll_shrink;
    int64_t aio_max_batch;
    int64_t thread_pool_min, thread_pool_max;
} IOThreadObject;

/* The objects in creation order, for query-iothreads.  Main thread. */
static GPtrArray *iothreads;

/* An optional non-negative integer property, checked as QEMU checks it. */
static bool get_param(JsonObject *props, const char *name, int64_t def,
                      int64_t *value, GError **errp)
{
    *value = json_object_get_int_member_with_default(props, name, def);
    if (*value < 0) {
        bd_error_setg(errp,
                      "%s value must be in range [0, %" G_GINT64_FORMAT "]",
                      name, G_MAXINT64);
        return false;
    }
    return true;
}

static bool iothread_create(BdObject *obj, JsonObject *props, GError **errp)
{
    IOThreadObject *t = bd_object_get_opaque(obj);
    BdAioContext *ctx;

    t->obj = obj;
    if (!get_param(props, "aio-max-batch", 0, &t->aio_max_batch, errp) ||
        !get_param(props, "thread-pool-min", 0, &t->thread_pool_min, errp) ||
        !get_param(props, "thread-pool-max", THREAD_POOL_MAX_DEFAULT,
                   &t->thread_pool_max, errp) ||
        !get_param(props, "poll-max-ns", POLL_MAX_NS_DEFAULT,
                   &t->poll_max_ns, errp) ||
        !get_param(props, "poll-grow", 0, &t->poll_grow, errp) ||
        !get_param(props, "poll-shrink", 0, &t->poll_shrink, errp)) {
        return false;
    }
    if (t->thread_pool_min > t->thread_pool_max || !t->thread_pool_max ||
        t->thread_pool_min > INT_MAX || t->thread_pool_max > INT_MAX) {
        bd_error_setg(errp, "bad thread-pool-min/thread-pool-max values");
        return false;
    }

    t->iot = bd_iothread_new(bd_object_get_id(obj), t->poll_max_ns,
                             t->poll_grow, t->poll_shrink, errp);
    if (!t->iot) {
        return false;
    }
    ctx = t->ctx = bd_iothread_get_aio_context(t->iot);
    if (!bd_aio_context_set_aio_params(ctx, t->aio_max_batch, errp) ||
        !bd_thread_pool_set_params(ctx, t->thread_pool_min,
                                   t->thread_pool_max, errp)) {
        return false;
    }
    if (!iothreads) {
        iothreads = g_ptr_array_new();
    }
    g_ptr_array_add(iothreads, t);
    return true;
}

static bool iothread_can_be_deleted(BdObject *obj)
{
    IOThreadObject *t = bd_object_get_opaque(obj);

    return bd_aio_context_get_users(bd_iothread_get_aio_context(t->iot)) == 0;
}

static void iothread_destroy(BdObject *obj)
{
    IOThreadObject *t = bd_object_get_opaque(obj);

    if (iothreads) {
        g_ptr_array_remove(iothreads, t);
    }
    bd_iothread_destroy(t->iot);
    t->iot = NULL;
}

/* ---- QOM properties (qom-get, qom-set), as QEMU's iothread has them ---- */

/* Where each property lives in the object. */
static int64_t *param_field(IOThreadObject *t, const char *name)
{
    if (strcmp(name, "poll-max-ns") == 0) {
        return &t->poll_max_ns;
    } else if (strcmp(name, "poll-grow") == 0) {
        return &t->poll_grow;
    } else if (strcmp(name, "poll-shrink") == 0) {
        return &t->poll_shrink;
    } else if (strcmp(name, "aio-max-batch") == 0) {
        return &t->aio_max_batch;
    } else if (strcmp(name, "thread-pool-min") == 0) {
        return &t->thread_pool_min;
    }
    return &t->thread_pool_max;
}

/*
 * QEMU stores a non-negative value first and then applies all of them
 * to the thread: a refused combination (thread-pool-min above -max)
 * fails qom-set but stays what qom-get shows, as there.
 */
static bool set_param(BdObject *obj, const char *name, JsonNode *value,
                      GError **errp)
{
    IOThreadObject *t = bd_object_get_opaque(obj);
    BdAioContext *ctx = t->ctx;
    int64_t v;

    if (!bd_object_property_int(value, name, &v, errp)) {
        return false;
    }
    if (v < 0) {
        bd_error_setg(errp,
                      "%s value must be in range [0, %" G_GINT64_FORMAT "]",
                      name, G_MAXINT64);
        return false;
    }
    *param_field(t, name) = v;
    if (g_str_has_prefix(name, "poll-")) {
        return bd_aio_context_set_poll_params(ctx, t->poll_max_ns,
                                              t->poll_grow, t->poll_shrink,
                                              errp);
    }
    /* QEMU applies aio-max-batch, then checks the pool's bounds */
    if (!bd_aio_context_set_aio_params(ctx, t->aio_max_batch, errp)) {
        return false;
    }
    if (t->thread_pool_min > t->thread_pool_max || !t->thread_pool_max ||
        t->thread_pool_min > INT_MAX || t->thread_pool_max > INT_MAX) {
        bd_error_setg(errp, "bad thread-pool-min/thread-pool-max values");
        return false;
    }
    return bd_thread_pool_set_params(ctx, t->thread_pool_min,
                                     t->thread_pool_max, errp);
}

static JsonNode *get_param_node(BdObject *obj, const char *name)
{
    return json_node_init_int(json_node_alloc(),
                              *param_field(bd_object_get_opaque(obj), name));
}

#define PARAM(NAME, FN)                                                   \
    static JsonNode *get_##FN(BdObject *obj, GError **errp)               \
    {                                                                     \
        return get_param_node(obj, NAME);                                 \
    }                                                                     \
    static bool set_##FN(BdObject *obj, JsonNode *value, GError **errp)   \
    {                                                                     \
        return set_param(obj, NAME, value, errp);                         \
    }
PARAM("thread-pool-min", thread_pool_min)
PARAM("aio-max-batch", aio_max_batch)
PARAM("thread-pool-max", thread_pool_max)
PARAM("poll-max-ns", poll_max_ns)
PARAM("poll-grow", poll_grow)
PARAM("poll-shrink", poll_shrink)

/* in the order qemu-storage-daemon's qom-list shows them */
static const BdObjectProperty iothread_properties[] = {
    { "thread-pool-min", "int", get_thread_pool_min, set_thread_pool_min },
    { "aio-max-batch", "int", get_aio_max_batch, set_aio_max_batch },
    { "thread-pool-max", "int", get_thread_pool_max, set_thread_pool_max },
    { "poll-max-ns", "int", get_poll_max_ns, set_poll_max_ns },
    { "poll-grow", "int", get_poll_grow, set_poll_grow },
    { "poll-shrink", "int", get_poll_shrink, set_poll_shrink },
    { NULL },
};

static const BdObjectType iothread_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "iothread",
    .description = "an event-loop thread for block nodes and exports",
    .instance_size = sizeof(IOThreadObject),
    .create = iothread_create,
    .can_be_deleted = iothread_can_be_deleted,
    .destroy = iothread_destroy,
    .properties = iothread_properties,
};

/*
 * ---- main-loop: the event-loop parameters of the main thread ----
 *
 * One object at most, never deletable, as in QEMU: it sets
 * aio-max-batch and the thread pool's bounds of the main loop's context
 * when made and when qom-set changes them.
 */

static bool main_loop_taken;

static bool main_loop_create(BdObject *obj, JsonObject *props,
                             GError **errp)
{
    IOThreadObject *t = bd_object_get_opaque(obj);

    t->obj = obj;
    return get_param(props, "aio-max-batch", 0, &t->aio_max_batch, errp) &&
           get_param(props, "thread-pool-min", 0, &t->thread_pool_min,
                     errp) &&
           get_param(props, "thread-pool-max", THREAD_POOL_MAX_DEFAULT,
                     &t->thread_pool_max, errp);
}

static bool main_loop_complete(BdObject *obj, GError **errp)
{
    IOThreadObject *t = bd_object_get_opaque(obj);

    /* qemu-storage-daemon checks the bounds before the one-instance rule */
    if (t->thread_pool_min > t->thread_pool_max || !t->thread_pool_max ||
        t->thread_pool_min > INT_MAX || t->thread_pool_max > INT_MAX) {
        bd_error_setg(errp, "bad thread-pool-min/thread-pool-max values");
        return false;
    }
    if (main_loop_taken) {
        bd_error_setg(errp, "only one main-loop instance allowed");
        return false;
    }
    /* object callbacks run in the main thread: this is its context */
    t->ctx = bd_aio_current_context();
    if (!bd_aio_context_set_aio_params(t->ctx, t->aio_max_batch, errp) ||
        !bd_thread_pool_set_params(t->ctx, t->thread_pool_min,
                                   t->thread_pool_max, errp)) {
        t->ctx = NULL;
        return false;
    }
    main_loop_taken = true;
    return true;
}

static bool main_loop_can_be_deleted(BdObject *obj)
{
    return false;
}

static void main_loop_destroy(BdObject *obj)
{
    IOThreadObject *t = bd_object_get_opaque(obj);

    /* the daemon exits (or complete() failed): the main loop is free */
    if (t->ctx) {
        main_loop_taken = false;
    }
}

static const BdObjectProperty main_loop_properties[] = {
    { "thread-pool-min", "int", get_thread_pool_min, set_thread_pool_min },
    { "aio-max-batch", "int", get_aio_max_batch, set_aio_max_batch },
    { "thread-pool-max", "int", get_thread_pool_max, set_thread_pool_max },
    { NULL },
};

static const BdObjectType main_loop_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "main-loop",
    .description = "the event-loop parameters of the main thread",
    .parent = "event-loop-base",
    .instance_size = sizeof(IOThreadObject),
    .create = main_loop_create,
    .complete = main_loop_complete,
    .can_be_deleted = main_loop_can_be_deleted,
    .destroy = main_loop_destroy,
    .properties = main_loop_properties,
};

static bool qmp_query_iothreads(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; iothreads && i < iothreads->len; i++) {
        IOThreadObject *t = iothreads->pdata[i];
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "id", bd_object_get_id(t->obj));
        json_object_set_int_member(info, "thread-id",
                                   bd_iothread_get_thread_id(t->iot));
        json_object_set_int_member(info, "poll-max-ns", t->poll_max_ns);
        json_object_set_int_member(info, "poll-grow", t->poll_grow);
        json_object_set_int_member(info, "poll-shrink", t->poll_shrink);
        json_object_set_int_member(info, "aio-max-batch", t->aio_max_batch);
        json_array_add_object_element(list, info);
    }
    *ret = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return true;
}

static const BdQmpCommand query_iothreads_cmd = {
    .struct_size = sizeof(BdQmpCommand),
    .name = "query-iothreads",
    .handler = qmp_query_iothreads,
};

static bool object_iothread_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &iothread_type, errp) &&
           bd_registry_add_object_type(reg, &main_loop_type, errp) &&
           bd_registry_add_qmp_command(reg, &query_iothreads_cmd, errp);
}

BD_PLUGIN(.name = "object-iothread",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the iothread and main-loop object types and "
                         "query-iothreads",
          .license = "GPL-2.0-or-later",
          .schema = object_iothread_schema,
          .init = object_iothread_init);
