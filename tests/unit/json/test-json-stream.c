/*
 * The JSON message stream and QEMU-style JSON output, with adversarial
 * input: every split of the input, garbage, deep nesting, odd strings.
 */
#include <string.h>

#include <glib.h>

#include "json/json-stream.h"
#include "json/json-writer.h"

/* Each message rendered as "V:<json>" or "E:<message>". */
static void collect(void *opaque, JsonNode *value, GError *err)
{
    GPtrArray *out = opaque;

    if (value) {
        g_autofree char *text = bd_qmp_json_format(value, false);

        g_ptr_array_add(out, g_strdup_printf("V:%s", text));
        json_node_unref(value);
    } else {
        g_ptr_array_add(out, g_strdup_printf("E:%s", err->message));
        g_error_free(err);
    }
}

/* Feed @in in pieces cut at @cuts (sorted, terminated by 0). */
static GPtrArray *run(const char *in, size_t len, const size_t *cuts)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    BdJsonStream *s = bd_json_stream_new(collect, out);
    size_t pos = 0;

    for (; cuts && *cuts; cuts++) {
        bd_json_stream_feed(s, in + pos, *cuts - pos);
        pos = *cuts;
    }
    bd_json_stream_feed(s, in + pos, len - pos);
    bd_json_stream_free(s);
    return out;
}

static char *joined(GPtrArray *msgs)
{
    g_ptr_array_add(msgs, NULL);
    char *j = g_strjoinv("\n", (char **)msgs->pdata);
    g_ptr_array_remove_index(msgs, msgs->len - 1);
    return j;
}

static void check(const char *in, size_t len, const char *expected)
{
    g_autoptr(GPtrArray) whole = run(in, len, NULL);
    g_autofree char *want = joined(whole);

    g_assert_cmpstr(want, ==, expected);
    /* the same messages whichever byte boundaries the input arrives at */
    for (size_t i = 1; i < len; i++) {
        size_t cuts[] = { i, 0 };
        g_autoptr(GPtrArray) split = run(in, len, cuts);
        g_autofree char *got = joined(split);

        g_assert_cmpstr(got, ==, want);
    }
    if (len > 2) {
        /* and byte by byte */
        g_autofree size_t *cuts = g_new0(size_t, len);

        for (size_t i = 1; i < len; i++) {
            cuts[i - 1] = i;
        }
        g_autoptr(GPtrArray) bytes = run(in, len, cuts);
        g_autofree char *got = joined(bytes);
        g_assert_cmpstr(got, ==, want);
    }
}

#define CHECK(in, expected) check(in, sizeof(in) - 1, expected)

static void test_values(void)
{
    CHECK("{\"execute\": \"x\", \"id\": [1, -2.5e3, true, false, null]}",
          "V:{\"execute\": \"x\", \"id\": [1, -2500, true, false, null]}");
    CHECK("{'a':'it''s'}", "E:JSON parse error, expected separator in dict");
    CHECK("{'a':'b\\'c\"d'}", "V:{\"a\": \"b'c\\\"d\"}");
    CHECK("1 2 \"x\" [] {}", "V:1\nV:2\nV:\"x\"\nV:[]\nV:{}");
    /* JSON has no infinity: 1e999 is what reads back as one */
    CHECK("0.1 -0.0 1e400 -1e400 ",
          "V:0.10000000000000001\nV:-0\nV:1e999\nV:-1e999");
    /* QEMU's integers reach from INT64_MIN to UINT64_MAX */
    CHECK("9223372036854775807 9223372036854775808 18446744073709551615 "
          "18446744073709551616 -9223372036854775808 -9223372036854775809 ",
          "V:9223372036854775807\nV:9223372036854775808\n"
          "V:18446744073709551615\nV:1.8446744073709552e+19\n"
          "V:-9223372036854775808\nV:-9.2233720368547758e+18");
    CHECK("\"\\u00e9\\ud83d\\ude00\\u007f\\u0000\"",
          "V:\"\\u00E9\\uD83D\\uDE00\\u007F\\u0000\"");
    CHECK("\"\xc3\xa9\"", "V:\"\\u00E9\"");
}

static void test_errors(void)
{
    CHECK("{\"a\":nope}", "E:JSON parse error, invalid keyword 'nope'");
    CHECK("}", "E:JSON parse error, expecting value");
    CHECK("\xff\n", "E:JSON parse error, stray '\xff'");
    CHECK("01 ", "E:JSON parse error, stray '01'");
    CHECK("[1.]", "E:JSON parse error, stray '1.]'");
    CHECK("{\"a\" 1}", "E:JSON parse error, missing : in object pair");
    CHECK("{\"a\":1 \"b\":2}", "E:JSON parse error, expected separator in dict");
    CHECK("[1 2]", "E:JSON parse error, expected separator in list");
    CHECK("{\"a\":1,\"a\":2}", "E:JSON parse error, duplicate key");
    CHECK("{1:2}", "E:JSON parse error, key is not a string in object");
    CHECK("[\"\\q\"]", "E:JSON parse error, invalid escape sequence in string");
    CHECK("[\"\\ud800\"]",
          "E:JSON parse error, \\ud800 is not a valid Unicode character");
    CHECK("[\"\\u12\"]",
          "E:JSON parse error, \\u12\" is not a valid Unicode character");
    CHECK("[\"\xc0\xaf\"]",
          "E:JSON parse error, invalid UTF-8 sequence in string");
}

static void test_recovery(void)
{
    /* after garbage the stream resynchronises at structural characters */
    CHECK("{\"a\":1} \xff {\"b\":2}",
          "V:{\"a\": 1}\nE:JSON parse error, stray '\xff'\nV:{\"b\": 2}");
    CHECK("{\"x\", \xfe \"id\":9}",
          "E:JSON parse error, stray '\xfe'\n"
          "E:JSON parse error, expecting value\nV:9\n"
          "E:JSON parse error, expecting value");
    CHECK("{\"a\":\x01\t\"b\"\r2}",
          "E:JSON parse error, stray '\x01'\nV:2\n"
          "E:JSON parse error, expecting value");
    CHECK("\"abc\n\"\n{}", "E:JSON parse error, stray '\"abc\n'\nV:{}");
}

static void test_nesting(void)
{
    GString *in = g_string_new(NULL);

    /* 1024 levels are fine, the 1025th is refused */
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(in, '[');
    }
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(in, ']');
    }
    g_autoptr(GPtrArray) ok = run(in->str, in->len, NULL);
    g_assert_cmpuint(ok->len, ==, 1);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(ok, 0), "V:[[[["));

    g_string_truncate(in, 0);
    for (int i = 0; i < 100000; i++) {
        g_string_append_c(in, '[');
    }
    g_autoptr(GPtrArray) deep = run(in->str, in->len, NULL);
    /* one error per 1025 brackets, never a crash or a huge allocation */
    g_assert_cmpuint(deep->len, ==, 100000 / 1025);
    g_assert_cmpstr(g_ptr_array_index(deep, 0), ==,
                    "E:JSON nesting depth limit exceeded");
    g_string_free(in, true);
}

static void test_garbage(void)
{
    /* random bytes: any outcome but a crash; then a clean value parses */
    GRand *rand = g_rand_new_with_seed(42);
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    BdJsonStream *s = bd_json_stream_new(collect, out);
    char buf[4096];

    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = (char)g_rand_int_range(rand, 0, 256);
        }
        bd_json_stream_feed(s, buf, sizeof(buf));
    }
    /* close whatever is open, then send a value */
    bd_json_stream_flush(s);
    g_ptr_array_set_size(out, 0);
    bd_json_stream_feed(s, "\n{\"ok\": true}", 13);
    g_assert_cmpuint(out->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(out, 0), ==, "V:{\"ok\": true}");
    bd_json_stream_free(s);
    g_rand_free(rand);
}

static void test_parse_one(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = bd_json_parse("{'a': [1]}", &err);

    g_assert_no_error(err);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
    g_assert_null(bd_json_parse("1 2", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_null(bd_json_parse("[1,", &err));
    g_assert_cmpstr(err->message, ==, "JSON parse error, premature EOI");
    g_clear_error(&err);
    /* as qsd's --blockdev: the first message decides */
    g_assert_null(bd_json_parse("{\"a\":@} {}", &err));
    g_assert_cmpstr(err->message, ==, "JSON parse error, stray '@'");
    g_clear_error(&err);
    g_assert_null(bd_json_parse("{\"a\":1} {", &err));
    g_assert_cmpstr(err->message, ==, "Expecting at most one JSON value");
}

/* QEMU cuts an error's detail at 1023 bytes (QMP and command line alike) */
static void test_long_error(void)
{
    g_autoptr(GString) in = g_string_new("{\"execute\":");
    g_autoptr(GString) want = g_string_new("JSON parse error, "
                                           "invalid keyword '");
    g_autoptr(GError) err = NULL;

    for (int i = 0; i < 2000; i++) {
        g_string_append_c(in, 'a');
    }
    g_string_append_c(in, '}');
    for (int i = 0; i < 1023 - 17; i++) {
        g_string_append_c(want, 'a');
    }
    g_autoptr(GPtrArray) out = run(in->str, in->len, NULL);
    g_assert_cmpuint(out->len, ==, 1);
    g_assert_cmpstr((char *)g_ptr_array_index(out, 0) + 2, ==, want->str);
    g_assert_null(bd_json_parse(in->str, &err));
    g_assert_cmpstr(err->message, ==, want->str);
}

static void test_writer_order(void)
{
    g_autoptr(JsonObject) o = json_object_new();
    g_autofree char *compact = NULL, *pretty = NULL;

    /* QDict order: by hash bucket, newest first within a bucket */
    json_object_set_int_member(o, "major", 7);
    json_object_set_int_member(o, "minor", 2);
    json_object_set_int_member(o, "micro", 0);
    json_object_set_object_member(o, "e", json_object_new());
    compact = bd_qmp_json_format_object(o, false);
    g_assert_cmpstr(compact, ==,
                    "{\"e\": {}, \"micro\": 0, \"minor\": 2, \"major\": 7}");
    pretty = bd_qmp_json_format_object(o, true);
    g_assert_cmpstr(pretty, ==,
                    "{\n    \"e\": {\n    },\n    \"micro\": 0,\n"
                    "    \"minor\": 2,\n    \"major\": 7\n}");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-stream/values", test_values);
    g_test_add_func("/json-stream/errors", test_errors);
    g_test_add_func("/json-stream/recovery", test_recovery);
    g_test_add_func("/json-stream/nesting", test_nesting);
    g_test_add_func("/json-stream/garbage", test_garbage);
    g_test_add_func("/json-stream/parse-one", test_parse_one);
    g_test_add_func("/json-stream/long-error", test_long_error);
    g_test_add_func("/qmp-json/order", test_writer_order);
    return g_test_run();
}
