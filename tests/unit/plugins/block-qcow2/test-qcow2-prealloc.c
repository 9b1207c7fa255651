/*
 * The qcow2 driver's truncate with preallocation (metadata, falloc,
 * full), through the real block-qcow2.so on the real block-file.so, with
 * qemu-img as the reference: the image grown by blockd is clean for
 * `qemu-img check` and maps (`qemu-img map`: data, zero, depth) as the
 * same image grown by `qemu-img resize --preallocation` (which guest
 * ranges have data); falloc and full
 * leave the data clusters allocated in the file.
 */
#define _GNU_SOURCE 1
#include <string.h>
#include <sys/stat.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "aio/aio-context.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define MIB (1024 * 1024)
#define OLD_SIZE (1 * MIB + 512)
#define NEW_SIZE (6 * MIB + 3 * 512)

typedef struct Req {
    BdNode *node;
    BdPreallocMode prealloc;
    int64_t offset;
    GError *err;
    int ret;
} Req;

static void truncate_co(void *opaque)
{
    Req *r = opaque;

    r->ret = bd_node_co_truncate(r->node, r->offset, true, r->prealloc, 0,
                                 &r->err);
}

/* Run @argv; its stdout (the test fails on a non-zero exit). */
static char *run_tool(const char *const *argv)
{
    char *out = NULL, *err = NULL;
    int status;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                               &status, NULL));
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("%s: %s%s", argv[0], out, err);
    }
    g_free(err);
    return out;
}

/*
 * qemu-img map --output=json as runs of (present, data, depth): the host
 * offsets and the zero flag (holes of the file under the clusters)
 * depend on where each implementation put the clusters.
 */
static char *map_of(const char *path)
{
    const char *argv[] = { "qemu-img", "map", "-f", "qcow2",
                           "--output=json", path, NULL };
    g_autofree char *out = run_tool(argv);
    g_autoptr(JsonParser) p = json_parser_new();
    JsonArray *a;
    GString *s = g_string_new(NULL);
    int64_t run_start = 0, run_end = 0;
    int64_t depth = -1;
    gboolean present = FALSE, dat = FALSE;

    g_assert_true(json_parser_load_from_data(p, out, -1, NULL));
    a = json_node_get_array(json_parser_get_root(p));
    for (guint i = 0; i <= json_array_get_length(a); i++) {
        JsonObject *e = i < json_array_get_length(a) ?
                        json_array_get_object_element(a, i) : NULL;

        if (e && json_object_get_int_member(e, "depth") == depth &&
            json_object_get_boolean_member(e, "present") == present &&
            json_object_get_boolean_member(e, "data") == dat) {
            run_end += json_object_get_int_member(e, "length");
            continue;
        }
        if (depth >= 0) {
            g_string_append_printf(s, "%" G_GINT64_FORMAT "+%" G_GINT64_FORMAT
                                   " depth=%" G_GINT64_FORMAT
                                   " present=%d data=%d\n", run_start,
                                   run_end - run_start, depth, present, dat);
        }
        if (e) {
            run_start = json_object_get_int_member(e, "start");
            run_end = run_start + json_object_get_int_member(e, "length");
            depth = json_object_get_int_member(e, "depth");
            present = json_object_get_boolean_member(e, "present");
            dat = json_object_get_boolean_member(e, "data");
        }
    }
    return g_string_free(s, FALSE);
}

typedef struct Case {
    const char *opts;
    BdPreallocMode mode;
    const char *mode_name;
} Case;

static void test_prealloc(gconstpointer data)
{
    const Case *c = data;
    GError *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("blockd-test-qcow2-XXXXXX", &err);
    g_autofree char *ours = g_build_filename(dir, "ours.qcow2", NULL);
    g_autofree char *ref = g_build_filename(dir, "ref.qcow2", NULL);
    g_autofree char *old = g_strdup_printf("%d", OLD_SIZE);
    g_autofree char *new = g_strdup_printf("%d", NEW_SIZE);
    g_autofree char *prealloc = g_strdup_printf("--preallocation=%s",
                                                c->mode_name);
    g_autofree char *json = NULL;
    g_autofree char *check = NULL, *map_ours = NULL, *map_ref = NULL;
    g_autoptr(JsonParser) p = json_parser_new();
    BdNode *node;
    Req r = { .prealloc = c->mode, .offset = NEW_SIZE };
    struct stat st;

    g_assert_no_error(err);
    for (int i = 0; i < 2; i++) {
        const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                               "-o", c->opts, i ? ref : ours, old, NULL };
        g_free(run_tool(argv));
    }
    {
        const char *io[] = { "qemu-io", "-f", "qcow2", "-c",
                             "write -P 0x5a 64k 4k", ours, NULL };
        const char *io2[] = { "qemu-io", "-f", "qcow2", "-c",
                              "write -P 0x5a 64k 4k", ref, NULL };

        g_free(run_tool(io));
        g_free(run_tool(io2));
    }
    {
        const char *argv[] = { "qemu-img", "resize", "-f", "qcow2",
                               prealloc, ref, new, NULL };
        g_free(run_tool(argv));
    }

    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"q\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", ours);
    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    node = bd_node_open(json_node_get_object(json_parser_get_root(p)), true,
                        &err);
    g_assert_no_error(err);
    r.node = node;
    bd_run_co(truncate_co, &r);
    g_assert_no_error(r.err);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_true(bd_node_delete_by_monitor("q", &err));
    g_assert_no_error(err);

    {
        const char *argv[] = { "qemu-img", "check", "-f", "qcow2", ours,
                               NULL };
        check = run_tool(argv);
        g_assert_nonnull(strstr(check, "No errors were found"));
        g_assert_null(strstr(check, "leaked"));
    }
    map_ours = map_of(ours);
    map_ref = map_of(ref);
    g_assert_cmpstr(map_ours, ==, map_ref);
    if (c->mode != BD_PREALLOC_METADATA) {
        /* the data clusters are in the file, not holes */
        g_assert_cmpint(stat(ours, &st), ==, 0);
        g_assert_cmpint((int64_t)st.st_blocks * 512, >=,
                        NEW_SIZE - OLD_SIZE);
    }
    {
        const char *io[] = { "qemu-io", "-f", "qcow2", "-c",
                             "read -P 0x5a 64k 4k", "-c",
                             "read -P 0 1M 5M", ours, NULL };
        g_autofree char *out = run_tool(io);

        g_assert_null(strstr(out, "verification failed"));
    }
    g_unlink(ours);
    g_unlink(ref);
    g_rmdir(dir);
}

static void test_shrink_refused(void)
{
    GError *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("blockd-test-qcow2-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "s.qcow2", NULL);
    g_autofree char *json = NULL;
    g_autoptr(JsonParser) p = json_parser_new();
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", path,
                           "4M", NULL };
    Req r = { .prealloc = BD_PREALLOC_METADATA, .offset = MIB };

    g_assert_no_error(err);
    g_free(run_tool(argv));
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"s\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", path);
    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    r.node = bd_node_open(json_node_get_object(json_parser_get_root(p)),
                          true, &err);
    g_assert_no_error(err);
    bd_run_co(truncate_co, &r);
    g_assert_cmpint(r.ret, <, 0);
    g_assert_nonnull(r.err);
    /* QEMU's words */
    g_assert_cmpstr(r.err->message, ==,
                    "Preallocation can't be used for shrinking an image");
    g_clear_error(&r.err);
    g_assert_true(bd_node_delete_by_monitor("s", &err));
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    static const Case cases[] = {
        { "cluster_size=65536", BD_PREALLOC_METADATA, "metadata" },
        { "cluster_size=65536", BD_PREALLOC_FALLOC, "falloc" },
        { "cluster_size=65536", BD_PREALLOC_FULL, "full" },
        { "cluster_size=4096,refcount_bits=64", BD_PREALLOC_METADATA,
          "metadata" },
        { "cluster_size=4096,refcount_bits=64", BD_PREALLOC_FULL, "full" },
        { "extended_l2=on", BD_PREALLOC_METADATA, "metadata" },
        { "extended_l2=on", BD_PREALLOC_FALLOC, "falloc" },
        { "compat=0.10", BD_PREALLOC_METADATA, "metadata" },
    };
    char **dirs;

    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/qcow2/prealloc/%s/%s",
                                                cases[i].opts,
                                                cases[i].mode_name);

        g_test_add_data_func(path, &cases[i], test_prealloc);
    }
    g_test_add_func("/qcow2/prealloc/shrink-refused", test_shrink_refused);
    return g_test_run();
}
