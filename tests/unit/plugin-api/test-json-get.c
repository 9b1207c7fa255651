/*
 * <blockd/json.h>: each getter gives the member's value only when it is
 * there and of its type, and the default otherwise.
 */
#include <blockd/json.h>

static JsonObject *parse(const char *text)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, text, -1, NULL));
    return json_object_ref(json_node_get_object(
        json_parser_get_root(parser)));
}

static void test_getters(void)
{
    g_autoptr(JsonObject) o = parse(
        "{\"s\": \"x\", \"b\": true, \"i\": -5, \"n\": null, "
        "\"d\": 1.5, \"o\": {\"k\": 1}, \"a\": [1]}");

    g_assert_cmpstr(bd_json_get_str(o, "s", "def"), ==, "x");
    g_assert_cmpstr(bd_json_get_str(o, "missing", "def"), ==, "def");
    g_assert_cmpstr(bd_json_get_str(o, "n", "def"), ==, "def");
    g_assert_cmpstr(bd_json_get_str(o, "b", "def"), ==, "def");
    g_assert_null(bd_json_get_str(o, "o", NULL));

    g_assert_true(bd_json_get_bool(o, "b", false));
    g_assert_true(bd_json_get_bool(o, "missing", true));
    g_assert_false(bd_json_get_bool(o, "s", false));

    g_assert_cmpint(bd_json_get_int(o, "i", 0), ==, -5);
    g_assert_cmpint(bd_json_get_int(o, "d", 7), ==, 7);
    g_assert_cmpint(bd_json_get_int(o, "a", 7), ==, 7);

    g_assert_nonnull(bd_json_get_object(o, "o"));
    g_assert_null(bd_json_get_object(o, "a"));
    g_assert_null(bd_json_get_object(o, "missing"));
    /* no object at all reads as all defaults */
    g_assert_cmpstr(bd_json_get_str(NULL, "s", "def"), ==, "def");
    g_assert_null(bd_json_get_object(NULL, "o"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json/getters", test_getters);
    return g_test_run();
}
