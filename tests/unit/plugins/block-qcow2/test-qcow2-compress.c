/*
 * The qcow2 driver's compressed writes (BD_REQ_WRITE_COMPRESSED), through
 * the real block-qcow2.so on the real block-file.so, checked with qemu-img
 * and qemu-io: compressible clusters written compressed from several
 * coroutines at once (zlib and zstd images, 64 KiB and 4 KiB clusters,
 * extended L2 entries) and a short last cluster; an incompressible one
 * written the normal way; QEMU's refusals (an allocated cluster: -EIO,
 * an unaligned offset: -EINVAL).  After the node is closed, qemu-img
 * check is clean and counts compressed clusters, qemu-img map shows them
 * as data without a host offset, and qemu-img compare finds the guest
 * data equal to a raw file written with the same bytes.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "aio/aio-context.h"
#include "aio/coroutine.h"
#include "block/block-int.h"
#include "plugin/plugin-loader.h"

#define NCLUSTERS 12
#define SIZE_TAIL 512           /* the image ends 512 bytes into a cluster */

typedef struct Write {
    BdNode *node;
    int64_t offset;
    int64_t bytes;
    uint8_t *buf;
    bool done;
    int ret;
} Write;

static void write_co(void *opaque)
{
    Write *w = opaque;
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, w->buf, w->bytes);
    w->ret = bd_node_co_pwritev(w->node, w->offset, w->bytes, &qiov,
                                BD_REQ_WRITE_COMPRESSED);
    w->done = true;
}

/* Run the writes as concurrent coroutines until all are done. */
static void run_writes(Write *w, int n)
{
    BdAioContext *ctx = bd_aio_main_context();
    bool all;

    for (int i = 0; i < n; i++) {
        bd_aio_coroutine_enter(ctx, bd_coroutine_create(write_co, &w[i]));
    }
    do {
        all = true;
        for (int i = 0; i < n; i++) {
            all = all && w[i].done;
        }
        if (!all) {
            bd_aio_poll(ctx, true);
        }
    } while (!all);
}

static char *run_tool(const char *const *argv, int *status_out)
{
    char *out = NULL, *err = NULL;
    int status;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                               &status, NULL));
    if (status_out) {
        *status_out = status;
    } else if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("%s: %s%s", argv[0], out, err);
    }
    g_free(err);
    return out;
}

/* Text-like bytes that compress well, different per cluster. */
static void fill_text(uint8_t *buf, int64_t len, int seed)
{
    static const char *words[] = { "qcow2 ", "cluster ", "compressed ",
                                   "bitmap ", "zstd ", "deflate " };
    uint64_t k = (uint64_t)seed;

    for (int64_t i = 0; i < len; k = k * 7 + 3) {
        const char *word = words[k % G_N_ELEMENTS(words)];
        int64_t n = MIN((int64_t)strlen(word), len - i);

        memcpy(buf + i, word, n);
        i += n;
    }
}

typedef struct Case {
    const char *opts;
    int64_t cluster;
} Case;

static void test_compressed(gconstpointer data)
{
    const Case *c = data;
    int64_t cs = c->cluster;
    int64_t size = NCLUSTERS * cs + SIZE_TAIL;
    GError *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("blockd-test-qcow2-XXXXXX", &err);
    g_autofree char *img = g_build_filename(dir, "c.qcow2", NULL);
    g_autofree char *raw = g_build_filename(dir, "c.raw", NULL);
    g_autofree char *size_str = g_strdup_printf("%" G_GINT64_FORMAT, size);
    g_autofree char *json = NULL;
    g_autofree uint8_t *guest = g_malloc0(size);
    g_autoptr(JsonParser) p = json_parser_new();
    Write w[NCLUSTERS + 1];
    int nw = 0, status;
    BdNode *node;

    g_assert_no_error(err);
    {
        const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                               "-o", c->opts, img, size_str, NULL };
        g_free(run_tool(argv, NULL));
    }
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"c\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", img);
    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    node = bd_node_open(json_node_get_object(json_parser_get_root(p)), true,
                        &err);
    g_assert_no_error(err);

    /* clusters 0..N-3 compressible, N-2 random, N-1 left empty */
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NCLUSTERS - 1; i++) {
        uint8_t *b = guest + i * cs;

        if (i == NCLUSTERS - 2) {
            for (int64_t k = 0; k < cs; k++) {
                b[k] = (uint8_t)g_random_int();
            }
        } else {
            fill_text(b, cs, i);
        }
        w[nw++] = (Write){ node, i * cs, cs, b, false, 0 };
    }
    /* the short cluster at the end of the image */
    fill_text(guest + NCLUSTERS * cs, SIZE_TAIL, 99);
    w[nw++] = (Write){ node, NCLUSTERS * cs, SIZE_TAIL,
                       guest + NCLUSTERS * cs, false, 0 };
    run_writes(w, nw);
    for (int i = 0; i < nw; i++) {
        g_assert_cmpint(w[i].ret, ==, 0);
    }

    /* QEMU's refusals: overwriting, unaligned, short in the middle */
    {
        Write bad[3] = {
            { node, 0, cs, guest, false, 0 },
            { node, 512, cs, guest, false, 0 },
            { node, (NCLUSTERS - 1) * cs, 512, guest, false, 0 },
        };

        run_writes(bad, 3);
        g_assert_cmpint(bad[0].ret, ==, -EIO);
        g_assert_cmpint(bad[1].ret, ==, -EINVAL);
        g_assert_cmpint(bad[2].ret, ==, -EINVAL);
    }
    g_assert_true(bd_node_delete_by_monitor("c", &err));
    g_assert_no_error(err);

    g_assert_true(g_file_set_contents(raw, (const char *)guest, size,
                                      &err));
    {
        const char *argv[] = { "qemu-img", "check", "-f", "qcow2", img,
                               NULL };
        g_autofree char *out = run_tool(argv, NULL);
        g_autofree char *expect = NULL;

        g_assert_nonnull(strstr(out, "No errors were found"));
        g_assert_null(strstr(out, "leaked"));
        /* N-2 text clusters and the tail are compressed, of N allocated */
        expect = g_strdup_printf("%.2f%% compressed clusters",
                                 100.0 * (NCLUSTERS - 1) / NCLUSTERS);
        g_assert_nonnull(strstr(out, expect));
    }
    {
        const char *argv[] = { "qemu-img", "compare", "-f", "qcow2", "-F",
                               "raw", img, raw, NULL };
        g_autofree char *out = run_tool(argv, &status);

        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(out, "Images are identical"));
    }
    {
        /* compressed data has no host offset in qemu-img map */
        const char *argv[] = { "qemu-img", "map", "-f", "qcow2",
                               "--output=json", img, NULL };
        g_autofree char *out = run_tool(argv, NULL);
        g_autoptr(JsonParser) mp = json_parser_new();
        JsonArray *a;
        int64_t compressed = 0, mapped = 0;

        g_assert_true(json_parser_load_from_data(mp, out, -1, NULL));
        a = json_node_get_array(json_parser_get_root(mp));
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *e = json_array_get_object_element(a, i);

            if (!json_object_get_boolean_member(e, "data")) {
                continue;
            }
            if (json_object_has_member(e, "offset")) {
                mapped += json_object_get_int_member(e, "length");
            } else {
                compressed += json_object_get_int_member(e, "length");
            }
        }
        g_assert_cmpint(compressed, ==, (NCLUSTERS - 2) * cs + SIZE_TAIL);
        g_assert_cmpint(mapped, ==, cs);
    }
    g_unlink(img);
    g_unlink(raw);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    static const Case cases[] = {
        { "cluster_size=65536,compression_type=zlib", 65536 },
        { "cluster_size=65536,compression_type=zstd", 65536 },
        { "cluster_size=4096,compression_type=zlib", 4096 },
        { "cluster_size=16384,extended_l2=on,compression_type=zstd", 16384 },
        { "compat=0.10,cluster_size=65536", 65536 },
    };
    char **dirs;

    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/qcow2/compress/%s",
                                                cases[i].opts);

        g_test_add_data_func(path, &cases[i], test_compressed);
    }
    return g_test_run();
}
