/*
 * object-thread-context: the 'thread-context' object type of QEMU 7.2.
 *
 * Each object runs a thread that only waits, with the CPU affinity given
 * by 'cpu-affinity' or by the CPUs of the NUMA nodes of 'node-affinity'
 * (read from sysfs); a thread created from the context would inherit it.
 * qom-get shows the thread's id and its affinity as the kernel has it;
 * qom-set changes the affinity of the running thread.  Messages and
 * checks are qemu-storage-daemon's.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <blockd/blockd.h>

#include "object-thread-context-schema.h"

/* The largest CPU number a uint16 names, plus one. */
#define MAX_CPUS 65536

typedef struct ThreadContext {
    GThread *thread;
    GMutex lock;
    GCond cond;
    pid_t tid;              /* 0 until the thread has started */
    bool quit;
} ThreadContext;

static gpointer context_thread(gpointer opaque)
{
    ThreadContext *tc = opaque;

    g_mutex_lock(&tc->lock);
    tc->tid = (pid_t)syscall(SYS_gettid);
    g_cond_broadcast(&tc->cond);
    while (!tc->quit) {
        g_cond_wait(&tc->cond, &tc->lock);
    }
    g_mutex_unlock(&tc->lock);
    return NULL;
}

/*
 * A list of uint16 in @value into a new CPU set (of @n numbers), with the
 * visitor's messages; @name is the property.
 */
static bool read_list(JsonNode *value, const char *name, GArray **out,
                      GError **errp)
{
    JsonArray *list;

    if (!value || !JSON_NODE_HOLDS_ARRAY(value)) {
        bd_error_setg(errp, "Invalid parameter type for '%s', expected: "
                      "array", name);
        return false;
    }
    list = json_node_get_array(value);
    *out = g_array_new(false, false, sizeof(guint16));
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonNode *n = json_array_get_element(list, i);
        gint64 v;
        guint16 u;

        /* QEMU's visitor names a list element 'null' */
        if (!JSON_NODE_HOLDS_VALUE(n) ||
            json_node_get_value_type(n) != G_TYPE_INT64) {
            bd_error_setg(errp, "Invalid parameter type for 'null', "
                          "expected: integer");
            g_clear_pointer(out, g_array_unref);
            return false;
        }
        v = json_node_get_int(n);
        if (v < 0 || v > G_MAXUINT16) {
            bd_error_setg(errp, "Parameter 'null' expects uint16_t");
            g_clear_pointer(out, g_array_unref);
            return false;
        }
        u = (guint16)v;
        g_array_append_val(*out, u);
    }
    return true;
}

/* Bind @tc's thread to @cpus. */
static bool apply_cpus(ThreadContext *tc, GArray *cpus, GError **errp)
{
    size_t size = CPU_ALLOC_SIZE(MAX_CPUS);
    cpu_set_t *set = CPU_ALLOC(MAX_CPUS);
    int ret;

    if (cpus->len == 0) {
        CPU_FREE(set);
        bd_error_setg(errp, "CPU list is empty");
        return false;
    }
    CPU_ZERO_S(size, set);
    for (guint i = 0; i < cpus->len; i++) {
        CPU_SET_S(g_array_index(cpus, guint16, i), size, set);
    }
    ret = sched_setaffinity(tc->tid, size, set);
    CPU_FREE(set);
    if (ret < 0) {
        bd_error_setg(errp, "Setting CPU affinity failed: %s",
                      g_strerror(errno));
        return false;
    }
    return true;
}

/* "0-3,8" (a sysfs cpulist) into @cpus. */
static void parse_cpulist(const char *text, GArray *cpus)
{
    g_auto(GStrv) ranges = g_strsplit(g_strstrip((char *)text), ",", -1);

    for (guint i = 0; ranges[i]; i++) {
        char *dash = strchr(ranges[i], '-');
        guint64 lo, hi;

        if (!ranges[i][0]) {
            continue;
        }
        lo = g_ascii_strtoull(ranges[i], NULL, 10);
        hi = dash ? g_ascii_strtoull(dash + 1, NULL, 10) : lo;
        for (guint64 c = lo; c <= hi && c < MAX_CPUS; c++) {
            guint16 u = (guint16)c;

            g_array_append_val(cpus, u);
        }
    }
}

/* The CPUs of NUMA nodes @nodes, as libnuma's numa_node_to_cpus(). */
static bool nodes_to_cpus(GArray *nodes, GArray **cpus, GError **errp)
{
    if (nodes->len == 0) {
        bd_error_setg(errp, "Node list is empty");
        return false;
    }
    *cpus = g_array_new(false, false, sizeof(guint16));
    for (guint i = 0; i < nodes->len; i++) {
        g_autofree char *path = g_strdup_printf(
            "/sys/devices/system/node/node%u/cpulist",
            g_array_index(nodes, guint16, i));
        g_autofree char *text = NULL;

        /* a node that does not exist has no CPUs */
        if (g_file_get_contents(path, &text, NULL, NULL)) {
            parse_cpulist(text, *cpus);
        }
    }
    if ((*cpus)->len == 0) {
        g_clear_pointer(cpus, g_array_unref);
        bd_error_setg(errp, "The nodes select no CPUs");
        return false;
    }
    return true;
}

static bool set_cpu_affinity(BdObject *obj, JsonNode *value, GError **errp)
{
    g_autoptr(GArray) cpus = NULL;

    return read_list(value, "cpu-affinity", &cpus, errp) &&
           apply_cpus(bd_object_get_opaque(obj), cpus, errp);
}

static bool set_node_affinity(BdObject *obj, JsonNode *value, GError **errp)
{
    g_autoptr(GArray) nodes = NULL, cpus = NULL;

    return read_list(value, "node-affinity", &nodes, errp) &&
           nodes_to_cpus(nodes, &cpus, errp) &&
           apply_cpus(bd_object_get_opaque(obj), cpus, errp);
}

static JsonNode *get_cpu_affinity(BdObject *obj, GError **errp)
{
    ThreadContext *tc = bd_object_get_opaque(obj);
    size_t size = CPU_ALLOC_SIZE(MAX_CPUS);
    cpu_set_t *set = CPU_ALLOC(MAX_CPUS);
    JsonArray *list;
    JsonNode *node;

    if (sched_getaffinity(tc->tid, size, set) < 0) {
        bd_error_setg(errp, "Getting CPU affinity failed: %s",
                      g_strerror(errno));
        CPU_FREE(set);
        return NULL;
    }
    list = json_array_new();
    for (int c = 0; c < MAX_CPUS; c++) {
        if (CPU_ISSET_S(c, size, set)) {
            json_array_add_int_element(list, c);
        }
    }
    CPU_FREE(set);
    node = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return node;
}

static JsonNode *get_thread_id(BdObject *obj, GError **errp)
{
    ThreadContext *tc = bd_object_get_opaque(obj);

    return json_node_init_int(json_node_alloc(), tc->tid);
}

static bool tc_create(BdObject *obj, JsonObject *props, GError **errp)
{
    ThreadContext *tc = bd_object_get_opaque(obj);
    JsonNode *cpus = json_object_get_member(props, "cpu-affinity");
    JsonNode *nodes = json_object_get_member(props, "node-affinity");

    if (cpus && nodes) {
        bd_error_setg(errp, "Mixing CPU and node affinity not supported");
        return false;
    }
    g_mutex_init(&tc->lock);
    g_cond_init(&tc->cond);
    tc->thread = g_thread_new("thread-context", context_thread, tc);
    g_mutex_lock(&tc->lock);
    while (!tc->tid) {
        g_cond_wait(&tc->cond, &tc->lock);
    }
    g_mutex_unlock(&tc->lock);
    if (cpus) {
        return set_cpu_affinity(obj, cpus, errp);
    }
    if (nodes) {
        return set_node_affinity(obj, nodes, errp);
    }
    return true;
}

static void tc_destroy(BdObject *obj)
{
    ThreadContext *tc = bd_object_get_opaque(obj);

    if (!tc->thread) {
        return;
    }
    g_mutex_lock(&tc->lock);
    tc->quit = true;
    g_cond_broadcast(&tc->cond);
    g_mutex_unlock(&tc->lock);
    g_thread_join(tc->thread);
    g_mutex_clear(&tc->lock);
    g_cond_clear(&tc->cond);
}

/* in the order qemu-storage-daemon's qom-list shows them */
static const BdObjectProperty tc_properties[] = {
    { "thread-id", "int", get_thread_id, NULL },
    /* QEMU cannot read node-affinity back (it becomes a CPU list) */
    { "node-affinity", "int", NULL, set_node_affinity },
    { "cpu-affinity", "int", get_cpu_affinity, set_cpu_affinity },
    { NULL },
};

static const BdObjectType tc_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "thread-context",
    .description = "a thread with a CPU affinity for threads made from it",
    .instance_size = sizeof(ThreadContext),
    .create = tc_create,
    .destroy = tc_destroy,
    .properties = tc_properties,
};

static bool object_thread_context_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &tc_type, errp);
}

BD_PLUGIN(.name = "object-thread-context",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the thread-context object type",
          .license = "GPL-2.0-or-later",
          .schema = object_thread_context_schema,
          .init = object_thread_context_init);
