/*
 * The object-secret and object-authz plugins as other plugins use them:
 * the real .so files from the build tree, objects made with the core's
 * bd_object_add(), then found with bd_object_find() and called through
 * bd_object_get_interface().
 *
 * authz: authz-simple; authz-list rule order, exact and glob rules and
 * the default policy; authz-listfile, also reloading its file when it is
 * replaced, and refusing everyone after a reload that fails (as QEMU).
 * secret: raw, base64, from a file, and AES-256-CBC encrypted data whose
 * ciphertext openssl(1) makes, so that the decryption is checked against
 * an independent implementation.
 */
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include <blockd/authz.h>
#include <blockd/secret.h>

#include "aio/aio-context.h"
#include "object/object.h"
#include "plugin/plugin-loader.h"

/* Give up waiting for a file change after this long (a robust bound). */
#define WAIT_US (20 * G_USEC_PER_SEC)

static char *tmpdir;

static void add_object(const char *json)
{
    g_autoptr(JsonParser) p = json_parser_new();
    GError *err = NULL;

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    g_assert_true(bd_object_add(json_node_get_object(json_parser_get_root(p)),
                                &err));
    g_assert_no_error(err);
}

/* object-add that must fail; returns the message */
static char *add_object_error(const char *json)
{
    g_autoptr(JsonParser) p = json_parser_new();
    GError *err = NULL;
    char *msg;

    g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
    g_assert_false(bd_object_add(
        json_node_get_object(json_parser_get_root(p)), &err));
    g_assert_nonnull(err);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

static void del_object(const char *id)
{
    GError *err = NULL;

    g_assert_true(bd_object_del(id, &err));
    g_assert_no_error(err);
}

static bool allowed(const char *id, const char *identity)
{
    BdObject *obj = bd_object_find(id, "authz");
    const BdAuthzInterface *ops;
    GError *err = NULL;
    bool ok;

    g_assert_nonnull(obj);
    ops = bd_object_get_interface(obj, BD_AUTHZ_INTERFACE);
    g_assert_nonnull(ops);
    g_assert_cmpuint(ops->struct_size, >=, sizeof(BdAuthzInterface));
    ok = ops->is_allowed(obj, identity, &err);
    g_assert_no_error(err);
    return ok;
}

static void test_authz_simple(void)
{
    add_object("{\"qom-type\": \"authz-simple\", \"id\": \"s\","
               " \"identity\": \"CN=client,O=Example\"}");
    g_assert_true(allowed("s", "CN=client,O=Example"));
    g_assert_false(allowed("s", "CN=client,O=Exampl"));
    g_assert_false(allowed("s", "CN=*"));
    g_assert_false(allowed("s", ""));
    /* an authz object is not a secret */
    g_assert_null(bd_object_find("s", "secret_common"));
    g_assert_null(bd_object_get_interface(bd_object_find("s", NULL),
                                          BD_SECRET_INTERFACE));
    del_object("s");
}

static void test_authz_list(void)
{
    /* the first matching rule decides, whatever the later ones say */
    add_object("{\"qom-type\": \"authz-list\", \"id\": \"l\","
               " \"policy\": \"allow\", \"rules\": ["
               " {\"match\": \"CN=bad*\", \"policy\": \"deny\","
               "  \"format\": \"glob\"},"
               " {\"match\": \"CN=bad-but-listed\", \"policy\": \"allow\"},"
               " {\"match\": \"CN=?x\", \"policy\": \"deny\","
               "  \"format\": \"glob\"},"
               " {\"match\": \"CN=exact*\", \"policy\": \"deny\","
               "  \"format\": \"exact\"}]}");
    g_assert_false(allowed("l", "CN=bad"));
    g_assert_false(allowed("l", "CN=bad-but-listed"));
    g_assert_false(allowed("l", "CN=ax"));
    g_assert_true(allowed("l", "CN=abx"));      /* '?' is one character */
    g_assert_false(allowed("l", "CN=exact*"));  /* exact: '*' is itself */
    g_assert_true(allowed("l", "CN=exactly"));
    g_assert_true(allowed("l", "CN=other"));    /* the default */
    del_object("l");

    /* default policy deny; glob '*' matches the empty string too */
    add_object("{\"qom-type\": \"authz-list\", \"id\": \"l\","
               " \"rules\": [{\"match\": \"O=Example,CN=*\","
               " \"policy\": \"allow\", \"format\": \"glob\"}]}");
    g_assert_true(allowed("l", "O=Example,CN="));
    g_assert_true(allowed("l", "O=Example,CN=x"));
    g_assert_false(allowed("l", "O=Other,CN=x"));
    /* as in QEMU, only '*' and '?' are special: no brackets */
    del_object("l");
    add_object("{\"qom-type\": \"authz-list\", \"id\": \"l\","
               " \"rules\": [{\"match\": \"CN=[ab]\","
               " \"policy\": \"allow\", \"format\": \"glob\"}]}");
    g_assert_false(allowed("l", "CN=a"));
    g_assert_true(allowed("l", "CN=[ab]"));
    del_object("l");

    /* no rules: the policy alone */
    add_object("{\"qom-type\": \"authz-list\", \"id\": \"l\"}");
    g_assert_false(allowed("l", "anyone"));
    del_object("l");
}

static char *write_tmp(const char *name, const char *contents, size_t len)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    GError *err = NULL;

    g_assert_true(g_file_set_contents(path, contents, len, &err));
    g_assert_no_error(err);
    return path;
}

/* Replace @path's contents by renaming a new file over it. */
static void replace_file(const char *path, const char *contents)
{
    g_autofree char *tmp = g_strconcat(path, ".new", NULL);
    GError *err = NULL;

    g_assert_true(g_file_set_contents(tmp, contents, -1, &err));
    g_assert_no_error(err);
    g_assert_cmpint(g_rename(tmp, path), ==, 0);
}

/* Run the main loop until allowed(@id, @identity) == @want, or fail. */
static void wait_decision(const char *id, const char *identity, bool want)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_US;

    while (allowed(id, identity) != want) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, false);
        g_usleep(1000);
    }
}

static void test_authz_listfile(void)
{
    g_autofree char *path = write_tmp("acl.json",
        "{\"policy\": \"deny\", \"rules\": [{\"match\": \"CN=one\","
        " \"policy\": \"allow\"}]}", -1);
    g_autofree char *json = NULL;
    char *msg = NULL;

    json = g_strdup_printf("{\"qom-type\": \"authz-listfile\", \"id\": \"f\","
                           " \"filename\": \"%s\"}", path);
    add_object(json);
    g_assert_true(allowed("f", "CN=one"));
    g_assert_false(allowed("f", "CN=two"));

    /* refresh (the default): a new file takes effect */
    replace_file(path, "{\"policy\": \"allow\", \"rules\": ["
                 "{\"match\": \"CN=o*\", \"policy\": \"deny\","
                 " \"format\": \"glob\"}]}");
    wait_decision("f", "CN=two", true);
    g_assert_false(allowed("f", "CN=one"));

    /* a file that does not load leaves no rules: everyone is refused */
    replace_file(path, "{\"policy\": \"maybe\"}");
    wait_decision("f", "CN=two", false);
    g_assert_false(allowed("f", "CN=one"));

    /* and a good file later brings it back */
    replace_file(path, "{\"policy\": \"allow\"}");
    wait_decision("f", "CN=one", true);
    del_object("f");

    /* refresh off: changes are not seen */
    json = (g_free(json), g_strdup_printf(
        "{\"qom-type\": \"authz-listfile\", \"id\": \"f\","
        " \"filename\": \"%s\", \"refresh\": false}", path));
    add_object(json);
    g_assert_true(allowed("f", "CN=one"));
    replace_file(path, "{\"policy\": \"deny\"}");
    /* the deny file is in place: a refreshing object sees it... */
    json = (g_free(json), g_strdup_printf(
        "{\"qom-type\": \"authz-listfile\", \"id\": \"g\","
        " \"filename\": \"%s\"}", path));
    add_object(json);
    g_assert_false(allowed("g", "CN=one"));
    /* ...and the main loop's pending events do not reach 'f' */
    while (g_main_context_iteration(NULL, false)) {
    }
    g_assert_true(allowed("f", "CN=one"));
    del_object("f");
    del_object("g");

    /* errors, with QEMU's messages */
    replace_file(path, "[1]");
    json = (g_free(json), g_strdup_printf(
        "{\"qom-type\": \"authz-listfile\", \"id\": \"f\","
        " \"filename\": \"%s\"}", path));
    msg = add_object_error(json);
    {
        g_autofree char *want = g_strdup_printf(
            "File '%s' must contain a JSON object", path);

        g_assert_cmpstr(msg, ==, want);
    }
    g_free(msg);
    replace_file(path, " \n");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Expecting a JSON value");
    g_free(msg);
    replace_file(path, "{\"rules\": [{\"match\": \"x\"}]}");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Parameter 'rules[0].policy' is missing");
    g_free(msg);
    replace_file(path, "{\"rules\": [{\"match\": \"x\", \"policy\": \"deny\","
                 " \"format\": \"regex\"}]}");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Parameter 'format' does not accept value "
                    "'regex'");
    g_free(msg);
    replace_file(path, "{\"rules\": [{\"match\": 1, \"policy\": \"deny\"}]}");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Invalid parameter type for 'rules[0].match', "
                    "expected: string");
    g_free(msg);
    replace_file(path, "{\"rules\": [{\"match\": \"x\", \"policy\": \"deny\","
                 " \"why\": 1}]}");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Parameter 'rules[0].why' is unexpected");
    g_free(msg);
    replace_file(path, "{\"id\": \"x\"}");
    msg = add_object_error(json);
    g_assert_cmpstr(msg, ==, "Property 'authz-list.id' not found");
    g_free(msg);
    g_unlink(path);
    msg = add_object_error(json);
    g_assert_true(g_str_has_prefix(msg, "Unable to read '"));
    g_free(msg);
    /* a refreshing object needs a directory to watch */
    {
        g_autofree char *cwd = g_get_current_dir();
        g_autofree char *rel = NULL;

        g_assert_cmpint(chdir(tmpdir), ==, 0);
        rel = write_tmp("rel.json", "{}", -1);
        msg = add_object_error("{\"qom-type\": \"authz-listfile\","
                               " \"id\": \"f\", \"filename\": \"rel.json\"}");
        g_assert_cmpstr(msg, ==, "Filename must be an absolute path");
        g_free(msg);
        add_object("{\"qom-type\": \"authz-listfile\", \"id\": \"f\","
                   " \"filename\": \"rel.json\", \"refresh\": false}");
        del_object("f");
        g_unlink(rel);
        g_assert_cmpint(chdir(cwd), ==, 0);
    }
    g_assert_null(bd_object_find("f", NULL));
}

/* The plain bytes of secret @id, through the interface. */
static GBytes *secret_bytes(const char *id)
{
    BdObject *obj = bd_object_find(id, "secret_common");
    const BdSecretInterface *ops;
    GError *err = NULL;
    uint8_t *data = NULL;
    size_t len = 0;

    g_assert_nonnull(obj);
    ops = bd_object_get_interface(obj, BD_SECRET_INTERFACE);
    g_assert_nonnull(ops);
    g_assert_true(ops->get_data(obj, &data, &len, &err));
    g_assert_no_error(err);
    g_assert_cmpint(data[len], ==, 0);
    return g_bytes_new_take(data, len);
}

static void assert_secret(const char *id, const void *want, size_t len)
{
    g_autoptr(GBytes) got = secret_bytes(id);

    g_assert_cmpmem(g_bytes_get_data(got, NULL), g_bytes_get_size(got),
                    want, len);
}

static void test_secret_plain(void)
{
    static const uint8_t binary[] = { 0, 1, 2, 0xff, 0, 'x' };
    g_autofree char *path = write_tmp("secret.bin", (const char *)binary,
                                      sizeof(binary));
    g_autofree char *path64 = write_tmp("secret.b64", "AAEC/wB4\n", -1);
    g_autofree char *json = NULL;

    add_object("{\"qom-type\": \"secret\", \"id\": \"raw\","
               " \"data\": \"pass word\"}");
    assert_secret("raw", "pass word", 9);
    add_object("{\"qom-type\": \"secret\", \"id\": \"b64\","
               " \"data\": \"cGFzcw==\", \"format\": \"base64\"}");
    assert_secret("b64", "pass", 4);
    json = g_strdup_printf("{\"qom-type\": \"secret\", \"id\": \"file\","
                           " \"file\": \"%s\"}", path);
    add_object(json);
    assert_secret("file", binary, sizeof(binary));
    g_free(json);
    json = g_strdup_printf("{\"qom-type\": \"secret\", \"id\": \"file64\","
                           " \"file\": \"%s\", \"format\": \"base64\"}",
                           path64);
    add_object(json);
    assert_secret("file64", binary, sizeof(binary));
    add_object("{\"qom-type\": \"secret\", \"id\": \"empty\", \"data\": \"\"}");
    assert_secret("empty", "", 0);

    /* a secret is not an authz */
    g_assert_null(bd_object_find("raw", "authz"));
    g_assert_null(bd_object_get_interface(bd_object_find("raw", NULL),
                                          BD_AUTHZ_INTERFACE));
    del_object("raw");
    del_object("b64");
    del_object("file");
    del_object("file64");
    del_object("empty");
    g_unlink(path);
    g_unlink(path64);
}

/* openssl enc's raw output for @plain with @key_hex/@iv_hex. */
static GBytes *openssl_encrypt(const char *plain, const char *key_hex,
                               const char *iv_hex)
{
    g_autofree char *in = write_tmp("plain", plain, -1);
    g_autofree char *out = g_build_filename(tmpdir, "cipher", NULL);
    const char *argv[] = { "openssl", "enc", "-aes-256-cbc", "-K", key_hex,
                           "-iv", iv_hex, "-in", in, "-out", out, NULL };
    GError *err = NULL;
    gint status;
    char *data;
    gsize len;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, NULL, NULL, &status, &err));
    g_assert_no_error(err);
    g_assert_true(g_spawn_check_wait_status(status, &err));
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(out, &data, &len, &err));
    g_assert_no_error(err);
    g_unlink(in);
    g_unlink(out);
    return g_bytes_new_take(data, len);
}

static void test_secret_encrypted(void)
{
    /* a 32-byte key and a 16-byte IV, in hex for openssl */
    static const char key_hex[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    static const char iv_hex[] = "f0e0d0c0b0a090807060504030201000";
    static const char *plains[] = {
        "the secret password",
        "exactly16bytes!!",     /* a whole block of padding follows */
        "",
    };
    uint8_t key[32], iv[16];
    g_autofree char *key64 = NULL, *iv64 = NULL, *json = NULL;

    for (int i = 0; i < 32; i++) {
        key[i] = i;
    }
    for (int i = 0; i < 16; i++) {
        iv[i] = 0xf0 - 0x10 * i;
    }
    key64 = g_base64_encode(key, sizeof(key));
    iv64 = g_base64_encode(iv, sizeof(iv));
    json = g_strdup_printf("{\"qom-type\": \"secret\", \"id\": \"key\","
                           " \"data\": \"%s\", \"format\": \"base64\"}",
                           key64);
    add_object(json);

    for (size_t i = 0; i < G_N_ELEMENTS(plains); i++) {
        g_autoptr(GBytes) ct = openssl_encrypt(plains[i], key_hex, iv_hex);
        g_autofree char *ct64 = NULL;
        g_autofree char *path = NULL;
        g_autofree char *obj = NULL;

        g_assert_cmpuint(g_bytes_get_size(ct) % 16, ==, 0);
        g_assert_cmpuint(g_bytes_get_size(ct), >, strlen(plains[i]));
        /* base64 ciphertext inline */
        ct64 = g_base64_encode(g_bytes_get_data(ct, NULL),
                               g_bytes_get_size(ct));
        obj = g_strdup_printf("{\"qom-type\": \"secret\", \"id\": \"enc\","
                              " \"data\": \"%s\", \"format\": \"base64\","
                              " \"keyid\": \"key\", \"iv\": \"%s\"}",
                              ct64, iv64);
        add_object(obj);
        assert_secret("enc", plains[i], strlen(plains[i]));
        del_object("enc");
        /* raw ciphertext in a file */
        path = write_tmp("enc.bin", g_bytes_get_data(ct, NULL),
                         g_bytes_get_size(ct));
        g_free(obj);
        obj = g_strdup_printf("{\"qom-type\": \"secret\", \"id\": \"enc\","
                              " \"file\": \"%s\", \"keyid\": \"key\","
                              " \"iv\": \"%s\"}", path, iv64);
        add_object(obj);
        assert_secret("enc", plains[i], strlen(plains[i]));
        del_object("enc");
        g_unlink(path);
    }
    del_object("key");
}

int main(int argc, char **argv)
{
    char **dirs;
    GError *err = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    bd_aio_main_context();
    dirs = bd_plugin_dirs(NULL);
    bd_plugins_discover(dirs);
    g_strfreev(dirs);
    tmpdir = g_dir_make_tmp("blockd-test-secret-authz-XXXXXX", &err);
    g_assert_no_error(err);

    g_test_add_func("/authz/simple", test_authz_simple);
    g_test_add_func("/authz/list", test_authz_list);
    g_test_add_func("/authz/listfile", test_authz_listfile);
    g_test_add_func("/secret/plain", test_secret_plain);
    g_test_add_func("/secret/encrypted", test_secret_encrypted);
    ret = g_test_run();

    bd_objects_delete_all();
    g_rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
