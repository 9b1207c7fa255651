/*
 * object-throttle-group: the 'throttle-group' object type, I/O limits
 * shared by the throttle nodes that name the group.  Its 'limits'
 * property (and, before the object is complete, the legacy x-* ones)
 * sets them; qom-set on 'limits' changes them at run time, as in QEMU.
 *
 * The throttle driver reaches a group through the "throttle-group"
 * interface (<blockd/throttle.h>): join/leave keep the group alive while
 * nodes use it, co_intercept makes a request wait its turn.
 */
#include <limits.h>
#include <string.h>

#include <blockd/blockd.h>

#include "object-throttle-group-schema.h"
#include "throttle.h"

/* Re-check the limits at least this often while a request waits, so that
 * a qom-set that lifts a limit lets waiting requests go. */
#define MAX_SLEEP_NS (100 * 1000 * 1000)

typedef struct ThrottleGroup {
    GMutex lock;                /* protects ts */
    ThrottleState ts;
    /* waiting requests pass one after the other, per direction (QEMU
     * queues reads and writes apart too) */
    BdCoMutex queue[2];
    unsigned members;           /* nodes using the group; main thread */
} ThrottleGroup;

/* ---- the members of ThrottleLimits and of the x-* properties ---- */

typedef enum { AVG, MAX, BURST_LENGTH, IOPS_SIZE } ThrottleField;

typedef struct ThrottleParam {
    const char *name;           /* ThrottleLimits' member */
    ThrottleBucketType type;
    ThrottleField field;
} ThrottleParam;

/* in ThrottleLimits' order (the order qom-get shows them in) */
static const ThrottleParam params[] = {
    { "iops-total", THROTTLE_OPS_TOTAL, AVG },
    { "iops-total-max", THROTTLE_OPS_TOTAL, MAX },
    { "iops-total-max-length", THROTTLE_OPS_TOTAL, BURST_LENGTH },
    { "iops-read", THROTTLE_OPS_READ, AVG },
    { "iops-read-max", THROTTLE_OPS_READ, MAX },
    { "iops-read-max-length", THROTTLE_OPS_READ, BURST_LENGTH },
    { "iops-write", THROTTLE_OPS_WRITE, AVG },
    { "iops-write-max", THROTTLE_OPS_WRITE, MAX },
    { "iops-write-max-length", THROTTLE_OPS_WRITE, BURST_LENGTH },
    { "bps-total", THROTTLE_BPS_TOTAL, AVG },
    { "bps-total-max", THROTTLE_BPS_TOTAL, MAX },
    { "bps-total-max-length", THROTTLE_BPS_TOTAL, BURST_LENGTH },
    { "bps-read", THROTTLE_BPS_READ, AVG },
    { "bps-read-max", THROTTLE_BPS_READ, MAX },
    { "bps-read-max-length", THROTTLE_BPS_READ, BURST_LENGTH },
    { "bps-write", THROTTLE_BPS_WRITE, AVG },
    { "bps-write-max", THROTTLE_BPS_WRITE, MAX },
    { "bps-write-max-length", THROTTLE_BPS_WRITE, BURST_LENGTH },
    { "iops-size", 0, IOPS_SIZE },
};
#define N_PARAMS G_N_ELEMENTS(params)

static uint64_t param_get(const ThrottleConfig *cfg, const ThrottleParam *p)
{
    const ThrottleBucket *b = &cfg->buckets[p->type];

    switch (p->field) {
    case AVG:
        return b->avg;
    case MAX:
        return b->max;
    case BURST_LENGTH:
        return b->burst_length;
    default:
        return cfg->op_size;
    }
}

static void param_set(ThrottleConfig *cfg, const ThrottleParam *p,
                      uint64_t v)
{
    ThrottleBucket *b = &cfg->buckets[p->type];

    switch (p->field) {
    case AVG:
        b->avg = v;
        break;
    case MAX:
        b->max = v;
        break;
    case BURST_LENGTH:
        b->burst_length = v;
        break;
    default:
        cfg->op_size = v;
    }
}

/*
 * QEMU's throttle_limits_to_config(): the given members of a
 * ThrottleLimits over @cfg, rates first, then burst lengths, then
 * iops-size (a negative value wraps to a large unsigned one, as in QEMU,
 * and is then refused); the result must be a valid combination.
 */
static bool limits_to_config(JsonObject *limits, ThrottleConfig *cfg,
                             GError **errp)
{
    static const ThrottleField order[] = { AVG, MAX, BURST_LENGTH,
                                           IOPS_SIZE };
    /* QEMU's order within a kind: bps before iops, total, read, write */
    static const ThrottleBucketType buckets[] = {
        THROTTLE_BPS_TOTAL, THROTTLE_BPS_READ, THROTTLE_BPS_WRITE,
        THROTTLE_OPS_TOTAL, THROTTLE_OPS_READ, THROTTLE_OPS_WRITE,
    };

    for (guint o = 0; o < G_N_ELEMENTS(order); o++) {
        for (guint k = 0; k < G_N_ELEMENTS(buckets); k++) {
            for (guint i = 0; i < N_PARAMS; i++) {
                const ThrottleParam *p = &params[i];
                int64_t v;

                if (p->field != order[o] ||
                    (p->field != IOPS_SIZE && p->type != buckets[k]) ||
                    (p->field == IOPS_SIZE && k > 0) ||
                    !json_object_has_member(limits, p->name)) {
                    continue;
                }
                v = json_object_get_int_member(limits, p->name);
                if (p->field == BURST_LENGTH) {
                    if (v > (int64_t)UINT_MAX) {
                        bd_error_setg(errp, "%s value must be in the range "
                                      "[0, %u]", p->name, UINT_MAX);
                        return false;
                    }
                }
                param_set(cfg, p, (uint64_t)v);
            }
        }
    }
    return throttle_is_valid(cfg, errp);
}

/* ---- the object ---- */

static bool throttle_group_create(BdObject *obj, JsonObject *props,
                                  GError **errp)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);
    ThrottleConfig cfg;

    g_mutex_init(&tg->lock);
    bd_co_mutex_init(&tg->queue[0]);
    bd_co_mutex_init(&tg->queue[1]);
    throttle_config_init(&cfg);

    if (json_object_has_member(props, "limits")) {
        if (!limits_to_config(json_object_get_object_member(props, "limits"),
                              &cfg, errp)) {
            return false;
        }
    }
    for (guint i = 0; i < N_PARAMS; i++) {
        g_autofree char *name = g_strconcat("x-", params[i].name, NULL);
        int64_t v;

        if (!json_object_has_member(props, name)) {
            continue;
        }
        v = json_object_get_int_member(props, name);
        if (v < 0) {
            bd_error_setg(errp, "Property values cannot be negative");
            return false;
        }
        if (params[i].field == BURST_LENGTH && v > (int64_t)UINT_MAX) {
            /* QEMU's message, without the space */
            bd_error_setg(errp, "%s value must be in therange [0, %u]",
                          name, UINT_MAX);
            return false;
        }
        param_set(&cfg, &params[i], v);
    }
    if (!throttle_is_valid(&cfg, errp)) {
        return false;
    }
    throttle_config(&tg->ts, &cfg, bd_clock_ns());
    return true;
}

static bool throttle_group_can_be_deleted(BdObject *obj)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);

    return tg->members == 0;
}

static void throttle_group_destroy(BdObject *obj)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);

    g_mutex_clear(&tg->lock);
}

/* ---- QOM properties ---- */

static JsonNode *get_limits(BdObject *obj, GError **errp)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);
    JsonObject *limits = json_object_new();
    ThrottleConfig cfg;
    JsonNode *node;

    g_mutex_lock(&tg->lock);
    cfg = tg->ts.cfg;
    g_mutex_unlock(&tg->lock);
    for (guint i = 0; i < N_PARAMS; i++) {
        json_object_set_int_member(limits, params[i].name,
                                   (int64_t)param_get(&cfg, &params[i]));
    }
    node = json_node_init_object(json_node_alloc(), limits);
    json_object_unref(limits);
    return node;
}

/* The checks of QEMU's visitor for a ThrottleLimits, with its messages. */
static bool check_limits(JsonNode *value, GError **errp)
{
    JsonObject *limits;
    g_autoptr(GList) members = NULL;

    if (!JSON_NODE_HOLDS_OBJECT(value)) {
        bd_error_setg(errp,
                      "Invalid parameter type for 'limits', expected: "
                      "object");
        return false;
    }
    limits = json_node_get_object(value);
    for (guint i = 0; i < N_PARAMS; i++) {
        JsonNode *m = json_object_get_member(limits, params[i].name);

        if (m && (!JSON_NODE_HOLDS_VALUE(m) ||
                  json_node_get_value_type(m) != G_TYPE_INT64)) {
            bd_error_setg(errp, "Invalid parameter type for 'limits.%s', "
                          "expected: integer", params[i].name);
            return false;
        }
    }
    members = json_object_get_members(limits);
    for (GList *l = members; l; l = l->next) {
        bool known = false;

        for (guint i = 0; i < N_PARAMS && !known; i++) {
            known = strcmp(l->data, params[i].name) == 0;
        }
        if (!known) {
            bd_error_setg(errp, "Parameter 'limits.%s' is unexpected",
                          (const char *)l->data);
            return false;
        }
    }
    return true;
}

/* New limits apply at once; the buckets start empty, as in QEMU. */
static bool set_limits(BdObject *obj, JsonNode *value, GError **errp)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);
    ThrottleConfig cfg;

    if (!check_limits(value, errp)) {
        return false;
    }
    g_mutex_lock(&tg->lock);
    cfg = tg->ts.cfg;
    if (!limits_to_config(json_node_get_object(value), &cfg, errp)) {
        g_mutex_unlock(&tg->lock);
        return false;
    }
    throttle_config(&tg->ts, &cfg, bd_clock_ns());
    g_mutex_unlock(&tg->lock);
    return true;
}

static JsonNode *get_x_param(BdObject *obj, guint i)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);
    uint64_t v;

    g_mutex_lock(&tg->lock);
    v = param_get(&tg->ts.cfg, &params[i]);
    g_mutex_unlock(&tg->lock);
    return json_node_init_int(json_node_alloc(), (int64_t)v);
}

/*
 * Limits change together through 'limits' once the group is made: QEMU
 * takes the x-* properties only while object-add builds the group, and
 * qom-set only ever sees complete objects.
 */
static bool set_x_param(BdObject *obj, guint i, JsonNode *value,
                        GError **errp)
{
    bd_error_setg(errp, "Property cannot be set after initialization");
    return false;
}

#define X_PARAM(I, FN)                                                    \
    static JsonNode *get_x_##FN(BdObject *obj, GError **errp)             \
    {                                                                     \
        return get_x_param(obj, I);                                       \
    }                                                                     \
    static bool set_x_##FN(BdObject *obj, JsonNode *value, GError **errp) \
    {                                                                     \
        return set_x_param(obj, I, value, errp);                          \
    }
X_PARAM(0, iops_total)
X_PARAM(1, iops_total_max)
X_PARAM(2, iops_total_max_length)
X_PARAM(3, iops_read)
X_PARAM(4, iops_read_max)
X_PARAM(5, iops_read_max_length)
X_PARAM(6, iops_write)
X_PARAM(7, iops_write_max)
X_PARAM(8, iops_write_max_length)
X_PARAM(9, bps_total)
X_PARAM(10, bps_total_max)
X_PARAM(11, bps_total_max_length)
X_PARAM(12, bps_read)
X_PARAM(13, bps_read_max)
X_PARAM(14, bps_read_max_length)
X_PARAM(15, bps_write)
X_PARAM(16, bps_write_max)
X_PARAM(17, bps_write_max_length)
X_PARAM(18, iops_size)

#define XP(NAME, FN) { "x-" NAME, "int", get_x_##FN, set_x_##FN }
static const BdObjectProperty throttle_group_properties[] = {
    XP("iops-total", iops_total),
    XP("iops-total-max", iops_total_max),
    XP("iops-total-max-length", iops_total_max_length),
    XP("iops-read", iops_read),
    XP("iops-read-max", iops_read_max),
    XP("iops-read-max-length", iops_read_max_length),
    XP("iops-write", iops_write),
    XP("iops-write-max", iops_write_max),
    XP("iops-write-max-length", iops_write_max_length),
    XP("bps-total", bps_total),
    XP("bps-total-max", bps_total_max),
    XP("bps-total-max-length", bps_total_max_length),
    XP("bps-read", bps_read),
    XP("bps-read-max", bps_read_max),
    XP("bps-read-max-length", bps_read_max_length),
    XP("bps-write", bps_write),
    XP("bps-write-max", bps_write_max),
    XP("bps-write-max-length", bps_write_max_length),
    XP("iops-size", iops_size),
    { "limits", "ThrottleLimits", get_limits, set_limits },
    { NULL },
};

/* ---- the interface the throttle driver uses ---- */

static void tg_join(BdObject *obj)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);

    tg->members++;
}

static void tg_leave(BdObject *obj)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);

    g_assert(tg->members > 0);
    tg->members--;
}

bd_coroutine_fn
static void tg_co_intercept(BdObject *obj, int64_t bytes, bool is_write,
                            const int *bypass)
{
    ThrottleGroup *tg = bd_object_get_opaque(obj);

    bd_co_mutex_lock(&tg->queue[is_write]);
    for (;;) {
        int64_t wait;

        g_mutex_lock(&tg->lock);
        throttle_leak(&tg->ts, bd_clock_ns());
        wait = throttle_compute_wait_for(&tg->ts, is_write);
        /* a drained node's requests go at once but count, as in QEMU */
        if (!wait || g_atomic_int_get(bypass)) {
            throttle_account(&tg->ts, is_write, bytes);
            g_mutex_unlock(&tg->lock);
            break;
        }
        g_mutex_unlock(&tg->lock);
        bd_co_sleep_ns(MIN(wait, MAX_SLEEP_NS));
    }
    bd_co_mutex_unlock(&tg->queue[is_write]);
}

static const BdThrottleGroupInterface tg_interface = {
    .struct_size = sizeof(BdThrottleGroupInterface),
    .join = tg_join,
    .leave = tg_leave,
    .co_intercept = tg_co_intercept,
};

static const BdObjectInterface throttle_group_interfaces[] = {
    { BD_THROTTLE_GROUP_INTERFACE, &tg_interface },
    { NULL },
};

static const BdObjectType throttle_group_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "throttle-group",
    .description = "I/O limits shared by throttle nodes",
    .instance_size = sizeof(ThrottleGroup),
    .create = throttle_group_create,
    .can_be_deleted = throttle_group_can_be_deleted,
    .destroy = throttle_group_destroy,
    .interfaces = throttle_group_interfaces,
    .properties = throttle_group_properties,
};

static bool object_throttle_group_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &throttle_group_type, errp);
}

BD_PLUGIN(.name = "object-throttle-group",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the throttle-group object type",
          .license = "GPL-2.0-or-later",
          .schema = object_throttle_group_schema,
          .init = object_throttle_group_init);
