/*
 * Unit tests of the keyval parser and of bd_cli_parse_option().
 *
 * The expected messages are what qemu-storage-daemon 7.2 printed for the
 * same argument (after its "qemu-storage-daemon: --OPTION ARG: " prefix);
 * the option it was given to is noted where the implied key matters.
 * Inputs qsd parsed but then refused for schema reasons ("Parameter
 * 'driver' is missing") are expected to parse here.
 */
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "json/json-stream.h"
#include "cli/keyval.h"

/* help: HELP_NULL passes no help pointer; else the expected *help */
enum { HELP_NULL = -1, HELP_NO = 0, HELP_YES = 1 };

typedef struct ParseCase {
    const char *implied;
    const char *input;
    int help;
    const char *json;           /* expected result, or NULL */
    const char *error;          /* expected message, or NULL */
} ParseCase;

#define LONG127 \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const ParseCase keyval_cases[] = {
    /* plain keys, escaping, trailing comma, empty input */
    { NULL, "", HELP_NULL, "{}", NULL },
    { NULL, "a=1", HELP_NULL, "{\"a\":\"1\"}", NULL },
    { NULL, "a=1,b=", HELP_NULL, "{\"a\":\"1\",\"b\":\"\"}", NULL },
    { NULL, "a=1,", HELP_NULL, "{\"a\":\"1\"}", NULL },
    { NULL, "a=x=y", HELP_NULL, "{\"a\":\"x=y\"}", NULL },
    { "driver", "driver=null-co,node-name=a,,b", HELP_NULL,
      "{\"driver\":\"null-co\",\"node-name\":\"a,b\"}", NULL },
    /* --nbd-server a=1,, and a=1,,, */
    { NULL, "a=1,,", HELP_NULL, "{\"a\":\"1,\"}", NULL },
    { NULL, "a=1,,,", HELP_NULL, "{\"a\":\"1,\"}", NULL },
    /* --blockdev driver=null-co,,,node-name=x: the ',,' is in the value */
    { "driver", "driver=null-co,,,node-name=x", HELP_NULL,
      "{\"driver\":\"null-co,\",\"node-name\":\"x\"}", NULL },
    /* last one wins (--object iothread,id=x,id=y is accepted) */
    { "qom-type", "iothread,id=x,id=y", HELP_NULL,
      "{\"qom-type\":\"iothread\",\"id\":\"y\"}", NULL },
    { "driver", "driver=null-co,node-name=a,driver=nope", HELP_NULL,
      "{\"driver\":\"nope\",\"node-name\":\"a\"}", NULL },
    /* key characters */
    { NULL, "A=1,a-b_c9=2,a.b-=3", HELP_NULL,
      "{\"A\":\"1\",\"a-b_c9\":\"2\",\"a\":{\"b-\":\"3\"}}", NULL },
    { NULL, "__com.redhat_x=1", HELP_NULL,
      "{\"__com.redhat_x\":\"1\"}", NULL },
    { NULL, "__com.redhat_x.y=1,a.__com.redhat_b.c=2", HELP_NULL,
      "{\"__com.redhat_x\":{\"y\":\"1\"},"
      "\"a\":{\"__com.redhat_b\":{\"c\":\"2\"}}}", NULL },
    { NULL, "__com-x_y=1", HELP_NULL, "{\"__com-x_y\":\"1\"}", NULL },
    { "driver", "abcd", HELP_NULL, "{\"driver\":\"abcd\"}", NULL },
    { NULL, "_a=1", HELP_NULL, NULL, "Invalid parameter '_a'" },
    { NULL, "__a=1", HELP_NULL, NULL, "Invalid parameter '__a'" },
    { NULL, "0=x", HELP_NULL, NULL, "Invalid parameter '0'" },
    { NULL, "a..b=x", HELP_NULL, NULL, "Invalid parameter 'a..b'" },
    { NULL, "a.=x", HELP_NULL, NULL, "Invalid parameter 'a.'" },
    { NULL, ".a=x", HELP_NULL, NULL, "Invalid parameter '.a'" },
    { NULL, "=x", HELP_NULL, NULL, "Invalid parameter ''" },
    { NULL, "a b=x", HELP_NULL, NULL, "Invalid parameter 'a b'" },
    { NULL, "a.-b=x", HELP_NULL, NULL, "Invalid parameter 'a.-b'" },
    { NULL, "a.1b=x", HELP_NULL, NULL, "Invalid parameter 'a.1b'" },
    { NULL, "a.0a=x", HELP_NULL, NULL, "Invalid parameter 'a.0a'" },
    { NULL, ",", HELP_NULL, NULL, "Invalid parameter ''" },
    { NULL, ",,", HELP_NULL, NULL, "Invalid parameter ''" },
    { "driver", ",driver=null-co", HELP_NULL, NULL, "Invalid parameter ''" },
    /* lengths: 127 is the longest fragment */
    { NULL, LONG127 "=x", HELP_NULL, "{\"" LONG127 "\":\"x\"}", NULL },
    { NULL, LONG127 "a=x", HELP_NULL, NULL,
      "Parameter '" LONG127 "a' is too long" },
    { NULL, "b." LONG127 "a=x", HELP_NULL, NULL,
      "Parameter fragment '" LONG127 "a' is too long" },
    { NULL, LONG127 "a.b=x", HELP_NULL, NULL,
      "Parameter fragment '" LONG127 "a' is too long" },
    /* missing '=' */
    { NULL, "addr.type=unix,addr.path", HELP_NULL, NULL,
      "Expected '=' after parameter 'addr.path'" },
    { NULL, "x", HELP_NULL, NULL, "Expected '=' after parameter 'x'" },
    { NULL, "a=1,b,c=2", HELP_NULL, NULL,
      "Expected '=' after parameter 'b'" },
    { "driver", "x,x", HELP_NULL, NULL, "Expected '=' after parameter 'x'" },
    { "driver", "null-co,x", HELP_NULL, NULL,
      "Expected '=' after parameter 'x'" },
    /* implied key */
    { "driver", "null-co", HELP_NULL, "{\"driver\":\"null-co\"}", NULL },
    { "driver", "null-co,", HELP_NULL, "{\"driver\":\"null-co\"}", NULL },
    { "driver", "a.b", HELP_NULL, "{\"driver\":\"a.b\"}", NULL },
    { "driver", "[1]", HELP_NULL, "{\"driver\":\"[1]\"}", NULL },
    { "driver", " {}", HELP_NULL, "{\"driver\":\" {}\"}", NULL },
    { "driver", "null-co=x", HELP_NULL, "{\"null-co\":\"x\"}", NULL },
    { "driver", "qcow2,file.driver=file,file.filename=x", HELP_NULL,
      "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
      "\"filename\":\"x\"}}", NULL },
    /* ...whose value ends at the first ',' and cannot escape it */
    { "driver", "null-co,,x", HELP_NULL, NULL, "Invalid parameter ''" },
    /* nesting and lists */
    { NULL, "a.b.c=1,a.b.d=2,a.e=3", HELP_NULL,
      "{\"a\":{\"b\":{\"c\":\"1\",\"d\":\"2\"},\"e\":\"3\"}}", NULL },
    { NULL, "a.1=y,a.0=x", HELP_NULL, "{\"a\":[\"x\",\"y\"]}", NULL },
    { NULL, "a.0.b=x,a.1.b=y,a.0.c=z", HELP_NULL,
      "{\"a\":[{\"b\":\"x\",\"c\":\"z\"},{\"b\":\"y\"}]}", NULL },
    { NULL, "a.0.0=x,a.0.1=y,a.1.0=z", HELP_NULL,
      "{\"a\":[[\"x\",\"y\"],[\"z\"]]}", NULL },
    { NULL, "a.0=x,a.00=y", HELP_NULL, "{\"a\":[\"y\"]}", NULL },
    { NULL, "a.1=x", HELP_NULL, NULL, "Parameter 'a.0' missing" },
    { NULL, "a.2=x,a.0=y", HELP_NULL, NULL, "Parameter 'a.1' missing" },
    { NULL, "a.b.0=x,a.b.2=y", HELP_NULL, NULL,
      "Parameter 'a.b.1' missing" },
    { NULL, "a.9999999999999=x", HELP_NULL, NULL,
      "Parameter 'a.0' missing" },
    { NULL, "a.0=x,a.00=y,a.2=z", HELP_NULL, NULL,
      "Parameter 'a.1' missing" },
    /* a key used both as a scalar and as an object or list */
    { NULL, "a.b=1,a=2", HELP_NULL, NULL,
      "Parameters 'a.*' used inconsistently" },
    { NULL, "a=2,a.b=1", HELP_NULL, NULL,
      "Parameters 'a.*' used inconsistently" },
    { NULL, "a.b=x,a.b.c.d=y", HELP_NULL, NULL,
      "Parameters 'a.b.*' used inconsistently" },
    { NULL, "a.b.c.d=y,a.b=x", HELP_NULL, NULL,
      "Parameters 'a.b.*' used inconsistently" },
    { NULL, "a.0=x,a.b=y", HELP_NULL, NULL,
      "Parameters 'a.*' used inconsistently" },
    { NULL, "a.b.0=x,a.b.z=y", HELP_NULL, NULL,
      "Parameters 'a.b.*' used inconsistently" },
    { NULL, "a.0.b=x,a.0=y", HELP_NULL, NULL,
      "Parameters 'a.0.*' used inconsistently" },
    { NULL, "a.0.b=x,a.1.c=y,a.0.1=z", HELP_NULL, NULL,
      "Parameters 'a.0.*' used inconsistently" },
    /* help: --blockdev and --nbd-server have none */
    { "driver", "help", HELP_NULL, NULL,
      "Help is not available for this option" },
    { "driver", "?", HELP_NULL, NULL,
      "Help is not available for this option" },
    { "driver", "driver=null-co,help", HELP_NULL, NULL,
      "Help is not available for this option" },
    { NULL, "help", HELP_NULL, NULL,
      "Help is not available for this option" },
    { "driver", "driver=help", HELP_NULL, "{\"driver\":\"help\"}", NULL },
    /* help: --object has it, anywhere */
    { "qom-type", "help", HELP_YES, "{}", NULL },
    { "qom-type", "iothread,help", HELP_YES,
      "{\"qom-type\":\"iothread\"}", NULL },
    { "qom-type", "iothread,?", HELP_YES,
      "{\"qom-type\":\"iothread\"}", NULL },
    { "qom-type", "iothread,help,id=x", HELP_YES,
      "{\"qom-type\":\"iothread\",\"id\":\"x\"}", NULL },
    { "qom-type", "iothread,help,", HELP_YES,
      "{\"qom-type\":\"iothread\"}", NULL },
    { "qom-type", "id=x,help", HELP_YES, "{\"id\":\"x\"}", NULL },
    { "qom-type", "iothread,id=x", HELP_NO,
      "{\"qom-type\":\"iothread\",\"id\":\"x\"}", NULL },
    { "qom-type", "iothread,help=1", HELP_NO,
      "{\"qom-type\":\"iothread\",\"help\":\"1\"}", NULL },
    { "qom-type", "qom-type=help", HELP_NO, "{\"qom-type\":\"help\"}",
      NULL },
    /* help takes the implied key's place, and parsing goes on */
    { "qom-type", "help,iothread", HELP_YES, NULL,
      "Expected '=' after parameter 'iothread'" },
    { "qom-type", "iothread,id=x,helpme", HELP_YES, NULL,
      "Expected '=' after parameter 'helpme'" },
    { "qom-type", "iothread,,help", HELP_YES, NULL, "Invalid parameter ''" },
    { "qom-type", "iothread,help,b", HELP_YES, NULL,
      "Expected '=' after parameter 'b'" },
    { "qom-type", "iothread,help,a.1=x", HELP_YES, NULL,
      "Parameter 'a.0' missing" },
};

/* JSON arguments (bd_cli_parse_option with a leading '{') */
static const ParseCase json_cases[] = {
    { "driver", "{}", HELP_NO, "{}", NULL },
    { "driver", "{\"driver\":\"null-co\",\"size\":1024,\"x\":-1.5,"
      "\"t\":true,\"f\":false,\"n\":null,\"l\":[1,[],{}]}", HELP_NO,
      "{\"driver\":\"null-co\",\"size\":1024,\"x\":-1.5,\"t\":true,"
      "\"f\":false,\"n\":null,\"l\":[1,[],{}]}", NULL },
    /* QEMU takes single quotes too */
    { "driver", "{'driver':'null-co','node-name':'n'}", HELP_NO,
      "{\"driver\":\"null-co\",\"node-name\":\"n\"}", NULL },
    { "driver", "{\"a\":'x\"'}", HELP_NO, "{\"a\":\"x\\\"\"}", NULL },
    { "driver", "{\"a\":\"\\u00e9\\\"\\\\\\/\\b\\f\\n\\r\\t\\'\"}", HELP_NO,
      "{\"a\":\"\xc3\xa9\\\"\\\\/\\b\\f\\n\\r\\t'\"}", NULL },
    { "driver", "{\"a\":\"\\ud83d\\ude00\"}", HELP_NO,
      "{\"a\":\"\xf0\x9f\x98\x80\"}", NULL },
    { "driver", "{\"a\":1} ", HELP_NO, "{\"a\":1}", NULL },
    { "driver", "{\"a\":1e999}", HELP_NO, NULL, NULL },
    { "driver", "{\"help\":1}", HELP_NO, "{\"help\":1}", NULL },
    /* errors, as qsd printed them for --blockdev */
    { "driver", "{\"driver\":", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    { "driver", "{", HELP_NO, NULL, "JSON parse error, premature EOI" },
    { "driver", "{\"a\":\"x\"", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    { "driver", "{bad", HELP_NO, NULL,
      "JSON parse error, invalid keyword 'bad'" },
    { "driver", "{\"a\":tru}", HELP_NO, NULL,
      "JSON parse error, invalid keyword 'tru'" },
    { "driver", "{\"driver\":\"null-co\"} x", HELP_NO, NULL,
      "Expecting at most one JSON value" },
    { "driver", "{\"a\":1}}", HELP_NO, NULL,
      "Expecting at most one JSON value" },
    { "driver", "{\"a\":1}x", HELP_NO, NULL,
      "Expecting at most one JSON value" },
    { "driver", "{\"a\":1} @", HELP_NO, NULL,
      "Expecting at most one JSON value" },
    { "driver", "{\"a\":1}[2]", HELP_NO, NULL,
      "Expecting at most one JSON value" },
    { "driver", "{\"driver\":\"null-co\",}", HELP_NO, NULL,
      "JSON parse error, expecting value" },
    { "driver", "{\"a\" :  \"x\",  }", HELP_NO, NULL,
      "JSON parse error, expecting value" },
    { "driver", "{\"a\":}", HELP_NO, NULL,
      "JSON parse error, expecting value" },
    { "driver", "{\"a\":[}", HELP_NO, NULL,
      "JSON parse error, expecting value" },
    { "driver", "{\"driver\" \"null-co\"}", HELP_NO, NULL,
      "JSON parse error, missing : in object pair" },
    { "driver", "{\"driver\":\"null-co\" \"x\":1}", HELP_NO, NULL,
      "JSON parse error, expected separator in dict" },
    { "driver", "{1:2}", HELP_NO, NULL,
      "JSON parse error, key is not a string in object" },
    { "driver", "{\"a\":[1 2]}", HELP_NO, NULL,
      "JSON parse error, expected separator in list" },
    { "driver", "{\"a\":\"\\q\"}", HELP_NO, NULL,
      "JSON parse error, invalid escape sequence in string" },
    { "driver", "{\"a\":\"\\x\"}", HELP_NO, NULL,
      "JSON parse error, invalid escape sequence in string" },
    { "driver", "{\"a\":\"\\u00e9\\ud800\"}", HELP_NO, NULL,
      "JSON parse error, \\ud800 is not a valid Unicode character" },
    { "driver", "{\"a\":@}", HELP_NO, NULL, "JSON parse error, stray '@'" },
    { "driver", "{\"a\":\"x", HELP_NO, NULL,
      "JSON parse error, stray '\"x'" },
    { "driver", "{\"a\":01}", HELP_NO, NULL,
      "JSON parse error, stray '01'" },
    { "driver", "{\"a\":\"\x01\"}", HELP_NO, NULL,
      "JSON parse error, stray '\"\x01'" },
    { "driver", "{\"a\":\"\xff\"}", HELP_NO, NULL,
      "JSON parse error, stray '\"\xff'" },
    { "driver", "{\"a\":-}", HELP_NO, NULL, "JSON parse error, stray '-}'" },
    { "driver", "{\"a\":1.}", HELP_NO, NULL,
      "JSON parse error, stray '1.}'" },
    { "driver", "{\"a\":TRUE}", HELP_NO, NULL,
      "JSON parse error, stray 'T'" },
    { "driver", "{\"a\":%d}", HELP_NO, NULL, "JSON parse error, stray '%'" },
    { "driver", "{\"driver\":\"null-co\",\"driver\":\"x\"}", HELP_NO, NULL,
      "JSON parse error, duplicate key" },
    { "driver", "{\"a\":1,\"a\":{\"b\":1", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    /* more of QEMU's lexer and string rules */
    { "driver", "{\"a\":\"\xc3\xa9\",\"b\":\"\xf0\x9f\x98\x80\"}", HELP_NO,
      "{\"a\":\"\xc3\xa9\",\"b\":\"\xf0\x9f\x98\x80\"}", NULL },
    { "driver", "{\t\"a\"\r\n:1}", HELP_NO, "{\"a\":1}", NULL },
    { "driver", "{\"a\":1e+5,\"b\":2E-3,\"c\":0.5e1,\"d\":-0}", HELP_NO,
      NULL, NULL },
    { "driver", "{\"a\":\"\xc3(\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\x80\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\xc0\xaf\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\xc3\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\xf4\x90\x80\x80\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\xed\xa0\x80\"}", HELP_NO, NULL,
      "JSON parse error, invalid UTF-8 sequence in string" },
    { "driver", "{\"a\":\"\xfe\"}", HELP_NO, NULL,
      "JSON parse error, stray '\"\xfe'" },
    { "driver", "{\"a\":\"\\ufdd0\"}", HELP_NO, NULL,
      "JSON parse error, \\ufdd0 is not a valid Unicode character" },
    { "driver", "{\"a\":\"\\uffff\"}", HELP_NO, NULL,
      "JSON parse error, \\uffff is not a valid Unicode character" },
    { "driver", "{\"a\":\"\\uzzzz\"}", HELP_NO, NULL,
      "JSON parse error, \\uzzzz is not a valid Unicode character" },
    { "driver", "{\"a\":\"\\ud800\\u0041\"}", HELP_NO, NULL,
      "JSON parse error, \\ud800 is not a valid Unicode character" },
    { "driver", "{\"a\":\"\\udc00\"}", HELP_NO, NULL,
      "JSON parse error, \\udc00 is not a valid Unicode character" },
    { "driver", "{\"a\":\"x\\", HELP_NO, NULL,
      "JSON parse error, stray '\"x\\'" },
    { "driver", "{\"a\":1e}", HELP_NO, NULL, "JSON parse error, stray '1e}'" },
    { "driver", "{\"a\":1e+}", HELP_NO, NULL,
      "JSON parse error, stray '1e+}'" },
    { "driver", "{\"a\":-01}", HELP_NO, NULL,
      "JSON parse error, stray '-01'" },
    /* a byte >= 0x80 ends a number or keyword and is a token of its own */
    { "driver", "{\"a\":1\xc3\xa9}", HELP_NO, NULL,
      "JSON parse error, stray '\xc3'" },
    { "driver", "{\"a\":true\xc3\xa9}", HELP_NO, NULL,
      "JSON parse error, stray '\xc3'" },
    { "driver", "{\"a\":[]", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    { "driver", "{\"a\":[1,", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    { "driver", "{\"a\":[1", HELP_NO, NULL,
      "JSON parse error, premature EOI" },
    { "driver", "{\"a\"", HELP_NO, NULL, "JSON parse error, premature EOI" },
    { "driver", "{\"a\":", HELP_NO, NULL, "JSON parse error, premature EOI" },
    { "driver", "{{}:1}", HELP_NO, NULL,
      "JSON parse error, key is not a string in object" },
    { "driver", "{,}", HELP_NO, NULL, "JSON parse error, expecting value" },
    { "driver", "{\"a\":nul}", HELP_NO, NULL,
      "JSON parse error, invalid keyword 'nul'" },
};

static void check_result(const ParseCase *c, JsonObject *obj, GError **errp)
{
    GError *err = *errp;

    if (c->error) {
        g_assert_null(obj);
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, c->error);
        g_clear_error(errp);
        return;
    }
    g_assert_no_error(err);
    g_assert_nonnull(obj);
    if (c->json) {
        JsonNode *node = json_node_new(JSON_NODE_OBJECT);
        char *text;

        json_node_set_object(node, obj);
        text = json_to_string(node, FALSE);
        g_assert_cmpstr(text, ==, c->json);
        g_free(text);
        json_node_unref(node);
    }
    json_object_unref(obj);
}

static void test_keyval_case(gconstpointer data)
{
    const ParseCase *c = data;
    GError *err = NULL;
    bool help = !c->help;       /* must be overwritten */
    JsonObject *obj;

    obj = bd_keyval_parse(c->input, c->implied,
                          c->help == HELP_NULL ? NULL : &help, &err);
    if (c->help != HELP_NULL && obj) {
        g_assert_cmpint(help, ==, c->help);
    }
    check_result(c, obj, &err);

    /* Not starting with '{', the command line reads it the same way */
    if (c->input[0] != '{') {
        bool is_json = true;

        help = !c->help;
        obj = bd_cli_parse_option(c->input, c->implied,
                                  c->help == HELP_NULL ? NULL : &help,
                                  &is_json, &err);
        g_assert_false(is_json);
        if (c->help != HELP_NULL && obj) {
            g_assert_cmpint(help, ==, c->help);
        }
        check_result(c, obj, &err);
    }
}

static void test_json_case(gconstpointer data)
{
    const ParseCase *c = data;
    GError *err = NULL;
    bool is_json = false, help = true;
    JsonObject *obj;

    obj = bd_cli_parse_option(c->input, c->implied, &help, &is_json, &err);
    g_assert_true(is_json);
    g_assert_false(help);
    check_result(c, obj, &err);
}

/* Values beyond what the JSON grammar reaches through the table. */
static void test_json_values(void)
{
    GError *err = NULL;
    JsonObject *obj;
    JsonNode *node;
    char *deep, *p;
    int i;

    obj = bd_cli_parse_option("{\"a\":\"\\u0000\",\"i\":-9223372036854775808,"
                              "\"e\":1e999,\"u\":99999999999999999999}",
                              NULL, NULL, NULL, &err);
    g_assert_no_error(err);
    /* QEMU keeps U+0000 as modified UTF-8 */
    g_assert_cmpstr(json_object_get_string_member(obj, "a"), ==, "\xc0\x80");
    g_assert_cmpint(json_object_get_int_member(obj, "i"), ==, G_MININT64);
    node = json_object_get_member(obj, "e");
    g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_DOUBLE);
    /* beyond int64: a double, as QEMU does beyond uint64 */
    node = json_object_get_member(obj, "u");
    g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_DOUBLE);
    g_assert_cmpfloat(json_node_get_double(node), ==, 1e20);
    json_object_unref(obj);

    /* raw C0 80 is QEMU's own spelling of U+0000, so it is accepted */
    obj = bd_cli_parse_option("{\"a\":\"\xc0\x80\"}", NULL, NULL, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(obj, "a"), ==, "\xc0\x80");
    json_object_unref(obj);

    /* the reader alone takes any value, but exactly one */
    node = bd_json_parse(" [1, \"x\"] ", &err);
    g_assert_no_error(err);
    g_assert_true(JSON_NODE_HOLDS_ARRAY(node));
    json_node_unref(node);
    g_assert_null(bd_json_parse(" \t", &err));
    g_assert_cmpstr(err->message, ==, "Expecting a JSON value");
    g_clear_error(&err);
    g_assert_null(bd_json_parse("1 2", &err));
    g_assert_cmpstr(err->message, ==, "Expecting at most one JSON value");
    g_clear_error(&err);

    /* is_json may be NULL for keyval too */
    obj = bd_cli_parse_option("a=1", NULL, NULL, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(json_object_get_string_member(obj, "a"), ==, "1");
    json_object_unref(obj);

    /* nesting is limited to 1024 levels */
    deep = g_malloc(2 * 1025 + 16);
    p = deep;
    *p++ = '{';
    *p++ = '"';
    *p++ = 'a';
    *p++ = '"';
    *p++ = ':';
    for (i = 0; i < 1023; i++) {
        *p++ = '[';
    }
    for (i = 0; i < 1023; i++) {
        *p++ = ']';
    }
    *p++ = '}';
    *p = '\0';
    obj = bd_cli_parse_option(deep, NULL, NULL, NULL, &err);
    g_assert_no_error(err);
    json_object_unref(obj);
    memmove(deep + 6, deep + 5, strlen(deep + 5) + 1);
    deep[5] = '[';
    obj = bd_cli_parse_option(deep, NULL, NULL, NULL, &err);
    g_assert_null(obj);
    g_assert_cmpstr(err->message, ==, "JSON nesting depth limit exceeded");
    g_clear_error(&err);
    g_free(deep);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < G_N_ELEMENTS(keyval_cases); i++) {
        char *path = g_strdup_printf("/keyval/parse/%03zu", i);

        g_test_add_data_func(path, &keyval_cases[i], test_keyval_case);
        g_free(path);
    }
    for (i = 0; i < G_N_ELEMENTS(json_cases); i++) {
        char *path = g_strdup_printf("/keyval/json/%03zu", i);

        g_test_add_data_func(path, &json_cases[i], test_json_case);
        g_free(path);
    }
    g_test_add_func("/keyval/json/values", test_json_values);
    return g_test_run();
}
