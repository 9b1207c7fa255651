/*
 * Unit tests of the schema engine: registry parsing, extensions and
 * conflicts, validation compared with what qemu-storage-daemon 7.2 answered
 * (tests/unit/schema/qsd-observed.json), keyval coercion, introspection.
 */
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/error.h>

#include "plugin/plugin-loader.h"
#include "schema/schema.h"
#include "util/error.h"
#include "schema-test-qsd72.h"
#include "schema-test-ext-base.h"
#include "schema-test-ext-a.h"
#include "schema-test-ext-b.h"
#include "schema-test-observed.h"

static JsonNode *parse_json(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(json_parser_load_from_data(p, text, -1, &err));
    g_assert_no_error(err);
    return json_node_copy(json_parser_get_root(p));
}

static char *to_text(JsonNode *node)
{
    return json_to_string(node, FALSE);
}

static void load(const char *text)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(bd_schema_add(text, &err));
    g_assert_no_error(err);
}

static void test_core(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(JsonObject) out = NULL;

    bd_schema_reset();
    g_assert_true(bd_schema_add_core(&err));
    g_assert_no_error(err);
    g_assert_true(bd_schema_has_command("query-version"));
    g_assert_true(bd_schema_has_command("qmp_capabilities"));
    g_assert_false(bd_schema_has_command("no-such-command"));
    names = bd_schema_command_names();
    g_assert_cmpuint(names->len, >=, 3);
    g_assert_true(bd_schema_check_command_args("quit", NULL, &out, &err));
    g_assert_cmpuint(json_object_get_size(out), ==, 0);
    g_assert_false(bd_schema_check_command_args("nope", NULL, &out, &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_COMMAND_NOT_FOUND);
    g_assert_cmpstr(err->message, ==, "The command nope has not been found");
    g_clear_error(&err);

    /* The built plugins' fragments (from their manifests) fit the core. */
    {
        g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
        GPtrArray *plugins;
        guint with_schema = 0;

        bd_plugins_discover(dirs);
        plugins = bd_plugins_all();
        for (guint i = 0; i < plugins->len; i++) {
            BdPlugin *p = plugins->pdata[i];
            if (p->schema) {
                g_assert_true(bd_schema_add(p->schema, &err));
                g_assert_no_error(err);
                with_schema++;
            }
        }
        g_assert_cmpuint(with_schema, >, 0);
        bd_plugins_reset();
    }
    {
        g_autoptr(JsonNode) in = parse_json(
            "{\"driver\":\"null-co\",\"node-name\":\"n\",\"size\":\"1\"}");
        g_autoptr(JsonNode) opts = bd_schema_check_type("BlockdevOptions",
                                                        in, true, &err);
        g_assert_no_error(err);
        g_assert_nonnull(opts);
    }
    bd_schema_reset();
}

/* Every QMP observation: same class and message, or success. */
static void test_observed_qmp(void)
{
    g_autoptr(JsonNode) root = parse_json(qsd_observed);
    JsonArray *qmp = json_object_get_array_member(
        json_node_get_object(root), "qmp");

    bd_schema_reset();
    load(schema_qsd72);
    g_assert_cmpuint(json_array_get_length(qmp), >, 100);
    for (guint i = 0; i < json_array_get_length(qmp); i++) {
        JsonObject *o = json_array_get_object_element(qmp, i);
        const char *cmd = json_object_get_string_member(o, "execute");
        JsonObject *args = json_object_get_object_member(o, "arguments");
        JsonObject *reply = json_object_get_object_member(o, "reply");
        JsonObject *want = json_object_get_object_member(reply, "error");
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) out = NULL;
        bool ok;

        if (json_object_has_member(o, "skip")) {
            continue;   /* json-glib cannot even hold the input */
        }
        ok = bd_schema_check_command_args(cmd, args, &out, &err);

        if (g_test_verbose()) {
            g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(),
                                                          args);
            g_autofree char *t = to_text(n);
            g_test_message("%s %s -> %s", cmd, t, ok ? "ok" : err->message);
        }
        g_assert_false(ok);
        g_assert_cmpstr(bd_error_class_name(err->code), ==,
                        json_object_get_string_member(want, "class"));
        g_assert_cmpstr(err->message, ==,
                        json_object_get_string_member(want, "desc"));
    }
    bd_schema_reset();
}

/* Every command-line observation: keyval coercion gives qsd's verdict. */
static void test_observed_keyval(void)
{
    g_autoptr(JsonNode) root = parse_json(qsd_observed);
    JsonArray *kv = json_object_get_array_member(
        json_node_get_object(root), "keyval");

    bd_schema_reset();
    load(schema_qsd72);
    g_assert_cmpuint(json_array_get_length(kv), >, 30);
    for (guint i = 0; i < json_array_get_length(kv); i++) {
        JsonObject *o = json_array_get_object_element(kv, i);
        const char *want = json_object_get_string_member_with_default(
            o, "error", NULL);
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) out = bd_schema_check_type(
            json_object_get_string_member(o, "type"),
            json_object_get_member(o, "value"), true, &err);

        if (g_test_verbose()) {
            g_test_message("%s -> %s",
                           json_object_get_string_member(o, "cli"),
                           out ? "ok" : err->message);
        }
        if (want) {
            g_assert_null(out);
            g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
            g_assert_cmpstr(err->message, ==, want);
        } else {
            g_assert_no_error(err);
            g_assert_nonnull(out);
        }
    }
    bd_schema_reset();
}

static JsonNode *keyval_ok(const char *type, const char *json)
{
    g_autoptr(JsonNode) in = parse_json(json);
    g_autoptr(GError) err = NULL;
    JsonNode *out = bd_schema_check_type(type, in, true, &err);

    g_assert_no_error(err);
    g_assert_nonnull(out);
    return out;
}

static void test_keyval_coercion(void)
{
    static const struct {
        const char *in;
        guint64 want;
    } sizes[] = {
        { "\"0\"", 0 }, { "\"512\"", 512 }, { "\"1k\"", 1024 },
        { "\"1K\"", 1024 }, { "\"1.5k\"", 1536 }, { "\"2M\"", 2 << 20 },
        { "\"1G\"", 1 << 30 }, { "\"1T\"", 1ULL << 40 },
        { "\"1P\"", 1ULL << 50 }, { "\"1E\"", 1ULL << 60 },
        { "\"0x200\"", 512 }, { "\"1.k\"", 1024 }, { "\"7B\"", 7 },
        { "\"18446744073709551615\"", G_MAXUINT64 },
        { "\"0.5k\"", 512 }, { "\"0.0001k\"", 0 }, { "\"0.0005k\"", 1 },
    };
    static const char *const bad_sizes[] = {
        "\"\"", "\"k\"", "\"1.5\"", "\"-1\"", "\"16E\"", "\"1e3\"",
        "\"0x1k\"", "\"1kk\"", "\"18446744073709551616\"",
    };

    bd_schema_reset();
    load(schema_qsd72);
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autoptr(JsonNode) out = keyval_ok("size", sizes[i].in);
        g_assert_cmpuint((guint64)json_node_get_int(out), ==, sizes[i].want);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
        g_autoptr(JsonNode) in = parse_json(bad_sizes[i]);
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) out = bd_schema_check_type("size", in, true,
                                                       &err);
        g_assert_null(out);
        g_assert_cmpstr(err->message, ==,
                        "Parameter '<anonymous>' expects size");
    }
    {
        g_autoptr(JsonNode) b = keyval_ok("bool", "\"off\"");
        g_autoptr(JsonNode) n = keyval_ok("number", "\"1.5\"");
        g_autoptr(JsonNode) i = keyval_ok("int", "\"-0x10\"");
        g_autoptr(JsonNode) u = keyval_ok("uint64", "\"-1\"");
        g_autoptr(JsonNode) l = keyval_ok("[int]", "[\"1\",\"2\"]");
        g_autoptr(JsonNode) o = keyval_ok(
            "BlockdevOptions", "{\"driver\":\"null-co\",\"size\":\"4096\","
            "\"read-zeroes\":\"on\",\"cache\":{\"direct\":\"n\"}}");
        g_autofree char *text = to_text(o);

        g_assert_false(json_node_get_boolean(b));
        g_assert_cmpfloat(json_node_get_double(n), ==, 1.5);
        g_assert_cmpint(json_node_get_int(i), ==, -16);
        g_assert_cmpuint((guint64)json_node_get_int(u), ==, G_MAXUINT64);
        g_assert_cmpuint(json_array_get_length(json_node_get_array(l)), ==,
                         2);
        /* Base members first, then the branch's, with real types. */
        g_assert_cmpstr(text, ==,
                        "{\"driver\":\"null-co\",\"cache\":{\"direct\":false},"
                        "\"size\":4096,\"read-zeroes\":true}");
    }
    bd_schema_reset();
}

/* JSON-mode corner cases beyond the observations. */
static void test_validation_json(void)
{
    static const struct {
        const char *type, *in, *msg;
    } cases[] = {
        { "number", "\"x\"", "Invalid parameter type for '<anonymous>', "
          "expected: number" },
        { "null", "1", "Invalid parameter type for '<anonymous>', "
          "expected: null" },
        { "[BlockdevOnError]", "[\"report\",\"x\"]",
          "Parameter 'null' does not accept value 'x'" },
        { "[uint32]", "[1,-1]", "Parameter 'null' expects uint32_t" },
        { "BlockdevOptions", "{\"driver\":\"raw\",\"file\":"
          "{\"driver\":\"raw\",\"file\":{\"driver\":\"file\"}}}",
          "Parameter 'file.file.filename' is missing" },
        { "BlockdevOptions", "{\"driver\":\"raw\",\"file\":true}",
          "Invalid parameter type for 'file', expected: BlockdevRef" },
    };

    bd_schema_reset();
    load(schema_qsd72);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(JsonNode) in = parse_json(cases[i].in);
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) out = bd_schema_check_type(cases[i].type, in,
                                                       false, &err);
        g_assert_null(out);
        g_assert_cmpstr(err->message, ==, cases[i].msg);
    }
    {
        g_autoptr(JsonNode) in = parse_json("[1, 2.5, {\"a\": null}]");
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) any = bd_schema_check_type("any", in, false,
                                                       &err);
        g_autoptr(JsonNode) num = parse_json("3");
        g_autoptr(JsonNode) numout = bd_schema_check_type("number", num,
                                                          false, &err);
        g_assert_nonnull(any);
        g_assert_true(json_node_equal(in, any));
        g_assert_cmpfloat(json_node_get_double(numout), ==, 3.0);
    }
    bd_schema_reset();
}

static char *snapshot(void)
{
    g_autoptr(JsonNode) schema = bd_schema_introspect();
    return to_text(schema);
}

static void test_extensions(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *before = NULL, *after = NULL;
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) out = NULL;

    bd_schema_reset();
    load(schema_ext_base);
    load(schema_ext_a);
    g_assert_true(bd_schema_command_allows_oob("ping"));
    g_assert_false(bd_schema_command_allows_oob("node-add"));
    g_assert_false(bd_schema_has_command("NODE_GONE"));

    in = parse_json("{\"driver\":\"alpha\",\"size\":\"1M\","
                    "\"tags\":{\"0\":\"x\"}}");
    out = bd_schema_check_type("Opts", in, true, &err);
    g_assert_null(out);
    g_assert_cmpstr(err->message, ==,
                    "Invalid parameter type for 'tags', expected: array");
    g_clear_error(&err);

    before = snapshot();
    g_assert_false(bd_schema_add(schema_ext_b, &err));
    g_assert_error(err, BD_ERROR, BD_ERROR_GENERIC);
    g_assert_cmpstr(err->message, ==, "plugin ext-b: branch 'alpha' of Opts "
                    "is already provided by plugin ext-a");
    g_clear_error(&err);
    /* Nothing of ext-b stayed: its type, command and enum value. */
    after = snapshot();
    g_assert_cmpstr(before, ==, after);
    g_assert_false(bd_schema_has_command("beta-cmd"));
    g_assert_null(bd_schema_check_type("BetaOpts", in, false, &err));
    g_assert_cmpstr(err->message, ==, "Unknown schema type 'BetaOpts'");
    g_clear_error(&err);

    /* The same fragment twice: the first definition conflicts. */
    g_assert_false(bd_schema_add(schema_ext_a, &err));
    g_assert_cmpstr(err->message, ==, "plugin ext-a: type 'AlphaOpts' is "
                    "already provided by plugin ext-a");
    g_clear_error(&err);
    /* A value an enum already has, and a command of the core. */
    g_assert_false(bd_schema_add(
        "{\"origin\":\"x\",\"exprs\":[{\"expr\":{\"extend-enum\":\"Drv\","
        "\"data\":[\"spare\"]},\"doc\":null,\"info\":\"x.json:1\"}]}", &err));
    g_assert_cmpstr(err->message, ==, "plugin x: enum value 'spare' of Drv "
                    "is already provided by plugin ext-a");
    g_clear_error(&err);
    g_assert_false(bd_schema_add(
        "{\"origin\":\"x\",\"exprs\":[{\"expr\":{\"command\":\"ping\"},"
        "\"doc\":null,\"info\":\"x.json:3\"}]}", &err));
    g_assert_cmpstr(err->message, ==, "plugin x: command 'ping' is already "
                    "provided by plugin ext-base");
    g_clear_error(&err);
    /* Unknown references and targets name the file and line. */
    g_assert_false(bd_schema_add(
        "{\"origin\":\"x\",\"exprs\":[{\"expr\":{\"struct\":\"S\",\"data\":"
        "{\"a\":\"Nope\"}},\"doc\":null,\"info\":\"x.json:7\"}]}", &err));
    g_assert_cmpstr(err->message, ==,
                    "plugin x: schema: 'S' member 'a' has unknown type 'Nope'");
    g_clear_error(&err);
    g_assert_false(bd_schema_add(
        "{\"origin\":\"x\",\"exprs\":[{\"expr\":{\"extend-union\":\"Nope\","
        "\"data\":{}},\"doc\":null,\"info\":\"x.json:9\"}]}", &err));
    g_assert_cmpstr(err->message, ==,
                    "plugin x: x.json:9: extend-union: no union 'Nope' to "
                    "extend");
    g_clear_error(&err);
    g_assert_false(bd_schema_add("{\"exprs\":[]}", &err));
    g_clear_error(&err);
    g_assert_false(bd_schema_add("not json", &err));
    g_clear_error(&err);
    g_free(after);
    after = snapshot();
    g_assert_cmpstr(before, ==, after);
    bd_schema_reset();
}

static JsonObject *find_info(JsonArray *a, const char *name)
{
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        if (!strcmp(json_object_get_string_member(o, "name"), name)) {
            return o;
        }
    }
    return NULL;
}

static void test_introspect(void)
{
    g_autoptr(JsonNode) schema = NULL;
    JsonArray *a;
    JsonObject *o, *arg, *tag;
    JsonArray *members, *variants;

    bd_schema_reset();
    load(schema_ext_base);
    load(schema_ext_a);
    schema = bd_schema_introspect();
    a = json_node_get_array(schema);

    /* Commands and events first, in definition order. */
    o = json_array_get_object_element(a, 0);
    g_assert_cmpstr(json_object_get_string_member(o, "name"), ==, "node-add");
    g_assert_cmpstr(json_object_get_string_member(o, "meta-type"), ==,
                    "command");
    /* Type names are masked as numbers in order of first use. */
    g_assert_cmpstr(json_object_get_string_member(o, "arg-type"), ==, "0");
    g_assert_cmpstr(json_object_get_string_member(o, "ret-type"), ==, "1");
    o = find_info(a, "ping");
    g_assert_true(json_object_get_boolean_member(o, "allow-oob"));
    g_assert_cmpstr(json_array_get_string_element(
                        json_object_get_array_member(o, "features"), 0),
                    ==, "unstable");
    g_assert_cmpstr(json_object_get_string_member(o, "arg-type"), ==, "1");
    o = find_info(a, "NODE_GONE");
    g_assert_cmpstr(json_object_get_string_member(o, "meta-type"), ==,
                    "event");
    g_assert_false(json_object_has_member(o, "ret-type"));

    /* The union: flattened base, tag, declared and implicit branches. */
    arg = find_info(a, "0");
    g_assert_cmpstr(json_object_get_string_member(arg, "meta-type"), ==,
                    "object");
    g_assert_cmpstr(json_object_get_string_member(arg, "tag"), ==, "driver");
    members = json_object_get_array_member(arg, "members");
    g_assert_cmpuint(json_array_get_length(members), ==, 2);
    g_assert_true(json_object_has_member(
                      json_array_get_object_element(members, 1), "default"));
    g_assert_false(json_object_has_member(
                       json_array_get_object_element(members, 0), "default"));
    variants = json_object_get_array_member(arg, "variants");
    g_assert_cmpuint(json_array_get_length(variants), ==, 2);
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(variants, 0), "case"),
                    ==, "alpha");
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(variants, 1), "type"),
                    ==, "1");
    o = find_info(a, "1");
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(o, "members")), ==, 0);

    /* The enum with members and values, plugin values included. */
    tag = find_info(a, json_object_get_string_member(
                        json_array_get_object_element(members, 0), "type"));
    g_assert_cmpstr(json_object_get_string_member(tag, "meta-type"), ==,
                    "enum");
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(tag, "values")), ==, 2);

    /* Integer types show as "int"; arrays as "[T]". */
    o = find_info(a, json_object_get_string_member(
                      json_array_get_object_element(variants, 0), "type"));
    members = json_object_get_array_member(o, "members");
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(members, 0), "type"),
                    ==, "int");
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(members, 1), "type"),
                    ==, "[str]");
    o = find_info(a, "[str]");
    g_assert_cmpstr(json_object_get_string_member(o, "meta-type"), ==,
                    "array");
    g_assert_cmpstr(json_object_get_string_member(o, "element-type"), ==,
                    "str");
    o = find_info(a, "int");
    g_assert_cmpstr(json_object_get_string_member(o, "json-type"), ==, "int");
    g_assert_null(find_info(a, "size"));
    bd_schema_reset();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/schema/core", test_core);
    g_test_add_func("/schema/observed-qmp", test_observed_qmp);
    g_test_add_func("/schema/observed-keyval", test_observed_keyval);
    g_test_add_func("/schema/keyval-coercion", test_keyval_coercion);
    g_test_add_func("/schema/validation-json", test_validation_json);
    g_test_add_func("/schema/extensions", test_extensions);
    g_test_add_func("/schema/introspect", test_introspect);
    return g_test_run();
}
