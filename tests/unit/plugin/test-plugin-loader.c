/*
 * Unit tests of the plugin loader, in process, with the real block-null
 * plugin of the build tree ($BLOCKD_PLUGIN_DIR, set by meson) and copies
 * of it whose manifests the tests edit in private temporary directories.
 */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include <blockd/blockd.h>

#include "blockd-config.h"
#include "plugin/plugin-loader.h"
#include "plugin/plugin-schema.h"
#include "schema/schema.h"

/* A private directory holding copies of block-null's files. */
typedef struct Fixture {
    char *dir;
} Fixture;

static void copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize len;
    g_autoptr(GError) err = NULL;

    g_assert_true(g_file_get_contents(from, &data, &len, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_set_contents(to, data, len, &err));
    g_assert_no_error(err);
}

static char *fixture_path(Fixture *f, const char *file)
{
    return g_build_filename(f->dir, file, NULL);
}

/* Copy the built block-null.so and .plugin into @f->dir as @stem.*. */
static void add_block_null(Fixture *f, const char *stem)
{
    const char *built = g_getenv("BLOCKD_PLUGIN_DIR");

    g_assert_nonnull(built);
    for (int i = 0; i < 2; i++) {
        const char *ext = i ? ".plugin" : ".so";
        g_autofree char *from = g_strconcat(built, "/block-null", ext, NULL);
        g_autofree char *name = g_strconcat(stem, ext, NULL);
        g_autofree char *to = fixture_path(f, name);
        copy_file(from, to);
    }
}

/* Replace the first @old in the file @file of @f->dir by @new. */
static void edit_file(Fixture *f, const char *file, const char *old,
                      const char *new)
{
    g_autofree char *path = fixture_path(f, file);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;

    g_assert_true(g_file_get_contents(path, &text, NULL, &err));
    char *at = strstr(text, old);
    g_assert_nonnull(at);
    *at = '\0';
    g_autofree char *edited = g_strconcat(text, new, at + strlen(old), NULL);
    g_assert_true(g_file_set_contents(path, edited, -1, &err));
    g_assert_no_error(err);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->dir = g_dir_make_tmp("blockd-loader-XXXXXX", &err);
    g_assert_no_error(err);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    GDir *dir = g_dir_open(f->dir, 0, NULL);
    const char *name;

    bd_plugins_reset();
    g_assert_nonnull(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *path = fixture_path(f, name);
        g_assert_cmpint(g_unlink(path), ==, 0);
    }
    g_dir_close(dir);
    g_assert_cmpint(g_rmdir(f->dir), ==, 0);
    g_free(f->dir);
}

/* Discover the plugins of @f->dir only. */
static void discover_fixture(Fixture *f)
{
    char *dirs[] = { f->dir, NULL };

    bd_plugins_discover(dirs);
}

/* The record of the plugin whose file is @file in the last discovery. */
static BdPlugin *find_plugin(const char *file)
{
    GPtrArray *all = bd_plugins_all();

    for (guint i = 0; i < all->len; i++) {
        BdPlugin *plugin = all->pdata[i];
        g_autofree char *base = g_path_get_basename(plugin->path);
        if (strcmp(base, file) == 0) {
            return plugin;
        }
    }
    g_assert_not_reached();
}

static void test_lookup_null_co(void)
{
    g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
    g_autoptr(GError) err = NULL;
    const BdBlockDriver *drv;

    bd_plugins_discover(dirs);
    g_assert_true(bd_plugins_provides(BD_PROVIDE_BLOCK_DRIVER, "null-co"));
    drv = bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co", &err);
    g_assert_no_error(err);
    g_assert_nonnull(drv);
    g_assert_cmpstr(drv->name, ==, "null-co");
    g_assert_cmpuint(drv->struct_size, ==, sizeof(BdBlockDriver));

    /* The second driver of the same plugin, now loaded. */
    drv = bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-aio", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(drv->name, ==, "null-aio");
    g_assert_cmpint(find_plugin("block-null.so")->state, ==,
                    BD_PLUGIN_LOADED);

    /* Each kind has its own name space. */
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_EXPORT_TYPE, "null-co",
                                    &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==,
                    "no installed plugin provides export type 'null-co'");
    bd_plugins_reset();
}

static void test_lookup_unknown(void)
{
    g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
    g_autoptr(GError) err = NULL;

    bd_plugins_discover(dirs);
    g_assert_false(bd_plugins_provides(BD_PROVIDE_BLOCK_DRIVER, "x"));
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "x", &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==,
                    "no installed plugin provides block driver 'x'");
    bd_plugins_reset();
}

static void assert_dirs(char **got, const char *const *want)
{
    g_assert_cmpuint(g_strv_length(got), ==,
                     g_strv_length((char **)want));
    for (guint i = 0; want[i]; i++) {
        g_assert_cmpstr(got[i], ==, want[i]);
    }
}

static void test_plugin_dirs(void)
{
    g_autofree char *saved = g_strdup(g_getenv("BLOCKD_PLUGIN_DIR"));
    char **dirs;

    /* --plugin-dir wins over the environment; empty parts are dropped. */
    g_setenv("BLOCKD_PLUGIN_DIR", "/env/one:/env/two", true);
    dirs = bd_plugin_dirs("/opt/a::/opt/b:");
    assert_dirs(dirs, (const char *const[]){ "/opt/a", "/opt/b", NULL });
    g_strfreev(dirs);

    /* Without an override (or with an empty one) the environment counts. */
    dirs = bd_plugin_dirs(NULL);
    assert_dirs(dirs, (const char *const[]){ "/env/one", "/env/two",
                                             NULL });
    g_strfreev(dirs);
    dirs = bd_plugin_dirs("");
    assert_dirs(dirs, (const char *const[]){ "/env/one", "/env/two",
                                             NULL });
    g_strfreev(dirs);
    g_setenv("BLOCKD_PLUGIN_DIR", ":/env/only:", true);
    dirs = bd_plugin_dirs(NULL);
    assert_dirs(dirs, (const char *const[]){ "/env/only", NULL });
    g_strfreev(dirs);

    /*
     * Neither: the default, which for a binary running from its build
     * tree (as this test does) is the build tree's plugin directory.
     */
    g_setenv("BLOCKD_PLUGIN_DIR", "", true);
    dirs = bd_plugin_dirs(NULL);
    assert_dirs(dirs, (const char *const[]){ BLOCKD_BUILD_PLUGIN_DIR,
                                             NULL });
    g_strfreev(dirs);
    g_unsetenv("BLOCKD_PLUGIN_DIR");
    dirs = bd_plugin_dirs(NULL);
    assert_dirs(dirs, (const char *const[]){ BLOCKD_BUILD_PLUGIN_DIR,
                                             NULL });
    g_strfreev(dirs);

    if (saved) {
        g_setenv("BLOCKD_PLUGIN_DIR", saved, true);
    }
}

static void test_copy_loads(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    add_block_null(f, "block-null");
    discover_fixture(f);
    BdPlugin *plugin = find_plugin("block-null.so");
    g_assert_cmpint(plugin->state, ==, BD_PLUGIN_AVAILABLE);
    g_assert_cmpuint(plugin->abi_major, ==, BD_PLUGIN_ABI_MAJOR);
    g_assert_cmpuint(plugin->abi_minor, ==, BD_PLUGIN_ABI_MINOR);
    g_assert_nonnull(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co",
                                       &err));
    g_assert_no_error(err);
    g_assert_cmpint(plugin->state, ==, BD_PLUGIN_LOADED);
}

static void test_manifest_bad_abi(Fixture *f, gconstpointer data)
{
    g_autofree char *abi = g_strdup_printf("\nABI=%d.%d\n",
                                           BD_PLUGIN_ABI_MAJOR,
                                           BD_PLUGIN_ABI_MINOR);
    g_autofree char *bad = g_strdup_printf("\nABI=%d.0\n",
                                           BD_PLUGIN_ABI_MAJOR + 1);
    g_autofree char *want = g_strdup_printf(
        "built for plugin ABI %d.0; this blockd provides %d.%d",
        BD_PLUGIN_ABI_MAJOR + 1, BD_PLUGIN_ABI_MAJOR, BD_PLUGIN_ABI_MINOR);

    add_block_null(f, "block-null");
    edit_file(f, "block-null.plugin", abi, bad);
    discover_fixture(f);
    BdPlugin *plugin = find_plugin("block-null.so");
    g_assert_cmpint(plugin->state, ==, BD_PLUGIN_FAILED);
    g_assert_cmpstr(plugin->error, ==, want);
    /* Refused from the manifest: the code was never loaded. */
    g_assert_null(plugin->handle);

    /* Using what it provides says which plugin and why. */
    g_autoptr(GError) err = NULL;
    g_autofree char *lookup_want = g_strdup_printf(
        "block driver 'null-co' is provided by plugin block-null, which "
        "failed to load: block-null.so: %s", want);
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co",
                                    &err));
    g_assert_cmpstr(err->message, ==, lookup_want);
    g_assert_null(plugin->handle);
}

static void test_manifest_name_mismatch(Fixture *f, gconstpointer data)
{
    g_autofree char *manifest = fixture_path(f, "block-null.plugin");
    g_autofree char *want = g_strdup_printf(
        "manifest %s names the plugin 'block-nil', but the file is named "
        "'block-null.so'", manifest);
    g_autoptr(GError) err = NULL;

    add_block_null(f, "block-null");
    edit_file(f, "block-null.plugin", "\nName=block-null\n",
              "\nName=block-nil\n");
    discover_fixture(f);
    BdPlugin *plugin = find_plugin("block-null.so");
    g_assert_cmpint(plugin->state, ==, BD_PLUGIN_FAILED);
    g_assert_cmpstr(plugin->error, ==, want);
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co",
                                    &err));
    g_assert_cmpstr(err->message, ==,
                    "no installed plugin provides block driver 'null-co'");
}

static void test_manifest_duplicate_claim(Fixture *f, gconstpointer data)
{
    g_autofree char *first = fixture_path(f, "block-null.so");
    g_autofree char *want = g_strdup_printf(
        "block driver 'null-co' is already provided by block-null (%s)",
        first);
    g_autoptr(GError) err = NULL;

    /* block-zero's manifest claims null-co too; it is found second. */
    add_block_null(f, "block-null");
    add_block_null(f, "block-zero");
    edit_file(f, "block-zero.plugin", "\nName=block-null\n",
              "\nName=block-zero\n");
    edit_file(f, "block-zero.plugin", "\nBlockDrivers=null-co;null-aio;\n",
              "\nBlockDrivers=zero;null-co;\n");
    discover_fixture(f);

    BdPlugin *zero = find_plugin("block-zero.so");
    g_assert_cmpint(zero->state, ==, BD_PLUGIN_FAILED);
    g_assert_cmpstr(zero->error, ==, want);
    /* Claims are all or nothing: "zero" was released with the rest. */
    g_assert_false(bd_plugins_provides(BD_PROVIDE_BLOCK_DRIVER, "zero"));

    const BdBlockDriver *drv =
        bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(drv->name, ==, "null-co");
    g_assert_cmpint(find_plugin("block-null.so")->state, ==,
                    BD_PLUGIN_LOADED);
}

static void test_lookup_failed_load(Fixture *f, gconstpointer data)
{
    g_autofree char *so = fixture_path(f, "block-null.so");
    g_autofree char *want = g_strdup_printf(
        "block driver 'null-aio' is provided by plugin block-null, which "
        "failed to load: block-null.so: failed to load: %s: invalid ELF "
        "header", so);
    g_autoptr(GError) err = NULL;

    /* A good manifest beside a .so that is not one (longer than a header). */
    g_autofree char *garbage = g_strnfill(1024, 'x');
    add_block_null(f, "block-null");
    g_assert_true(g_file_set_contents(so, garbage, -1, NULL));
    discover_fixture(f);
    g_assert_cmpint(find_plugin("block-null.so")->state, ==,
                    BD_PLUGIN_AVAILABLE);
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-aio",
                                    &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, want);

    /* The failure sticks: the next lookup gives the same reason. */
    g_clear_error(&err);
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-aio",
                                    &err));
    g_assert_cmpstr(err->message, ==, want);
}

static void test_lookup_manifest_mismatch(Fixture *f, gconstpointer data)
{
    g_autofree char *manifest = fixture_path(f, "block-null.plugin");
    g_autoptr(GError) err = NULL;

    /* The code is real but its manifest claims another version. */
    add_block_null(f, "block-null");
    edit_file(f, "block-null.plugin", "\nVersion=" BLOCKD_VERSION "\n",
              "\nVersion=99.0\n");
    discover_fixture(f);
    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "null-co",
                                    &err));
    g_autofree char *want = g_strdup_printf(
        "block driver 'null-co' is provided by plugin block-null, which "
        "failed to load: block-null.so: does not match its manifest %s "
        "(manifest: ABI %d.%d, version 99.0; plugin: ABI %d.%d, version "
        "%s); regenerate the manifest", manifest, BD_PLUGIN_ABI_MAJOR,
        BD_PLUGIN_ABI_MINOR, BD_PLUGIN_ABI_MAJOR, BD_PLUGIN_ABI_MINOR,
        BLOCKD_VERSION);
    g_assert_cmpstr(err->message, ==, want);
}

/*
 * Two plugins whose fragments add the same union branch: the second is
 * refused when the schemas are joined, before any code of either runs,
 * and using what it provides says why.
 */
static void test_schema_conflict(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    add_block_null(f, "block-null");
    add_block_null(f, "block-zero");
    edit_file(f, "block-zero.plugin", "\nName=block-null\n",
              "\nName=block-zero\n");
    edit_file(f, "block-zero.plugin", "\nBlockDrivers=null-co;null-aio;\n",
              "\nBlockDrivers=zero;\n");
    edit_file(f, "block-zero.plugin", "{\"origin\":\"block-null\"",
              "{\"origin\":\"block-zero\"");
    discover_fixture(f);
    g_assert_true(bd_plugin_schemas_load(&err));
    g_assert_no_error(err);

    BdPlugin *null = find_plugin("block-null.so");
    BdPlugin *zero = find_plugin("block-zero.so");
    g_assert_cmpint(null->state, ==, BD_PLUGIN_AVAILABLE);
    g_assert_cmpint(zero->state, ==, BD_PLUGIN_FAILED);
    g_assert_true(g_str_has_prefix(zero->error, "schema refused: "));
    g_assert_nonnull(strstr(zero->error, "block-zero"));
    g_assert_nonnull(strstr(zero->error, "already provided by plugin "
                                         "block-null"));
    g_assert_null(zero->handle);
    g_assert_true(bd_schema_has_command("query-plugins"));

    g_assert_null(bd_plugins_lookup(BD_PROVIDE_BLOCK_DRIVER, "zero", &err));
    g_assert_nonnull(strstr(err->message, "schema refused"));
    bd_schema_reset();
}

static void add_fixture_test(const char *path,
                             void (*fn)(Fixture *, gconstpointer))
{
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/plugin-loader/lookup/null-co", test_lookup_null_co);
    g_test_add_func("/plugin-loader/lookup/unknown", test_lookup_unknown);
    g_test_add_func("/plugin-loader/dirs", test_plugin_dirs);
    add_fixture_test("/plugin-loader/manifest/copy-loads", test_copy_loads);
    add_fixture_test("/plugin-loader/manifest/bad-abi",
                     test_manifest_bad_abi);
    add_fixture_test("/plugin-loader/manifest/name-mismatch",
                     test_manifest_name_mismatch);
    add_fixture_test("/plugin-loader/manifest/duplicate-claim",
                     test_manifest_duplicate_claim);
    add_fixture_test("/plugin-loader/lookup/failed-load",
                     test_lookup_failed_load);
    add_fixture_test("/plugin-loader/schema/conflict", test_schema_conflict);
    add_fixture_test("/plugin-loader/lookup/manifest-mismatch",
                     test_lookup_manifest_mismatch);
    return g_test_run();
}
