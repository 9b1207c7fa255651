/*
 * Unit tests of the QemuOpts parser used for --chardev.
 *
 * Expected values and messages come from running qemu-storage-daemon 7.2
 * with the same --chardev argument: where qsd refused an argument for a
 * reason past parsing (an unknown name, a bad backend), the comment says
 * what it printed and the test checks what the parser hands on.
 */
#include <glib.h>
#include <json-glib/json-glib.h>

#include "cli/keyval.h"

#define ID_ERROR "Parameter 'id' expects an identifier\n" \
    "Identifiers consist of letters, digits, '-', '.', '_', " \
    "starting with a letter."

typedef struct OptsCase {
    const char *input;
    const char *json;           /* expected result, or NULL */
    const char *error;          /* expected message, or NULL */
    const char *warnings;       /* expected warnings joined by '|' */
    bool help;                  /* expected *help */
} OptsCase;

static const OptsCase cases[] = {
    { "", "{}", NULL, "", false },
    { "socket,id=char0,path=x,server=on,wait=off",
      "{\"id\":\"char0\",\"backend\":\"socket\",\"path\":\"x\","
      "\"server\":\"on\",\"wait\":\"off\"}", NULL, "", false },
    { "backend=socket,id=c0", "{\"id\":\"c0\",\"backend\":\"socket\"}",
      NULL, "", false },
    /* ',,' escaping, also in the implied value ("'socket,x' is not a
     * valid char driver name") */
    { "socket,id=c0,path=a,,b", "{\"id\":\"c0\",\"backend\":\"socket\","
      "\"path\":\"a,b\"}", NULL, "", false },
    { "socket,,x,id=c0", "{\"id\":\"c0\",\"backend\":\"socket,x\"}",
      NULL, "", false },
    /* "'' is not a valid char driver name" */
    { ",id=c0", "{\"id\":\"c0\",\"backend\":\"\"}", NULL, "", false },
    { "socket,id=c0,", "{\"id\":\"c0\",\"backend\":\"socket\"}", NULL, "",
      false },
    /* "Invalid parameter 'a'", "Invalid parameter ''" */
    { "socket,id=c0,a=b=c", "{\"id\":\"c0\",\"backend\":\"socket\","
      "\"a\":\"b=c\"}", NULL, "", false },
    { "socket,id=c0,=x", "{\"id\":\"c0\",\"backend\":\"socket\",\"\":\"x\"}",
      NULL, "", false },
    /* the last value wins */
    { "null,id=c0,x=1,x=2", "{\"id\":\"c0\",\"backend\":\"null\","
      "\"x\":\"2\"}", NULL, "", false },
    /* the first id wins ("chardev \"c1\" not found") */
    { "socket,id=c0,id=c1", "{\"id\":\"c0\",\"backend\":\"socket\"}",
      NULL, "", false },
    /* the id scan does not know the implied value */
    { "null,,id=x", "{\"id\":\"x\",\"backend\":\"null,id=x\"}", NULL, "",
      false },
    /* short-form booleans, with qsd's deprecation warnings */
    { "socket,id=c0,server,nowait",
      "{\"id\":\"c0\",\"backend\":\"socket\",\"server\":\"on\","
      "\"wait\":\"off\"}", NULL,
      "short-form boolean option 'server' deprecated\n"
      "Please use server=on instead|"
      "short-form boolean option 'nowait' deprecated\n"
      "Please use wait=off instead", false },
    { "socket,id=c0,nodelay",
      "{\"id\":\"c0\",\"backend\":\"socket\",\"delay\":\"off\"}", NULL,
      "short-form boolean option 'nodelay' deprecated\n"
      "Please use nodelay=on instead", false },
    { "socket,id=c0,delay",
      "{\"id\":\"c0\",\"backend\":\"socket\",\"delay\":\"on\"}", NULL,
      "short-form boolean option 'delay' deprecated\n"
      "Please use nodelay=off instead", false },
    /* then "Invalid parameter ''" */
    { "socket,id=c0,no",
      "{\"id\":\"c0\",\"backend\":\"socket\",\"\":\"off\"}", NULL,
      "short-form boolean option 'no' deprecated\n"
      "Please use =off instead", false },
    /* then "Invalid parameter 'socket'" */
    { "id=c0,socket", "{\"id\":\"c0\",\"socket\":\"on\"}", NULL,
      "short-form boolean option 'socket' deprecated\n"
      "Please use socket=on instead", false },
    /* "noid" is id=off, and names the chardev "off" */
    { "null,noid", "{\"id\":\"off\",\"backend\":\"null\"}", NULL,
      "short-form boolean option 'noid' deprecated\n"
      "Please use id=off instead", false },
    /* help: the implied value "help" lists backends; later, options */
    { "help", "{\"backend\":\"help\"}", NULL, "", false },
    { "socket,id=c0,path=x,help", "{\"id\":\"c0\",\"backend\":\"socket\","
      "\"path\":\"x\"}", NULL, "", true },
    { "socket,id=c0,?,path=x", "{\"id\":\"c0\",\"backend\":\"socket\"}",
      NULL, "", true },
    { "socket,id=c0,nohelp", "{\"id\":\"c0\",\"backend\":\"socket\","
      "\"help\":\"off\"}", NULL,
      "short-form boolean option 'nohelp' deprecated\n"
      "Please use help=off instead", false },
    /* ids */
    { "socket,id=a-b.c_9", "{\"id\":\"a-b.c_9\",\"backend\":\"socket\"}",
      NULL, "", false },
    { "socket,id=,path=x", NULL, ID_ERROR, "", false },
    { "socket,id=1x,path=x", NULL, ID_ERROR, "", false },
    { "socket,id=a b,path=x", NULL, ID_ERROR, "", false },
    { "socket,id=c0,,", NULL, ID_ERROR, "", false },
    { "socket,id=c0,,x", NULL, ID_ERROR, "", false },
    { "socket,help,id=", NULL, ID_ERROR, "", false },
};

static char *object_to_string(JsonObject *obj)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    char *text;

    json_node_set_object(node, obj);
    text = json_to_string(node, FALSE);
    json_node_unref(node);
    return text;
}

static void test_case(gconstpointer data)
{
    const OptsCase *c = data;
    g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
    GError *err = NULL;
    bool help = !c->help;
    JsonObject *obj;

    obj = bd_qemu_opts_parse_full(c->input, "backend", &help, warnings,
                                  &err);
    if (c->error) {
        g_assert_null(obj);
        g_assert_cmpstr(err->message, ==, c->error);
        g_clear_error(&err);
    } else {
        g_autofree char *text = NULL;
        g_autofree char *joined = NULL;

        g_assert_no_error(err);
        text = object_to_string(obj);
        g_assert_cmpstr(text, ==, c->json);
        g_assert_cmpint(help, ==, c->help);
        g_ptr_array_add(warnings, NULL);
        joined = g_strjoinv("|", (char **)warnings->pdata);
        g_assert_cmpstr(joined, ==, c->warnings);
        json_object_unref(obj);
    }
}

/* Without a help pointer, help is an ordinary short-form boolean. */
static void test_no_help_pointer(void)
{
    GError *err = NULL;
    JsonObject *obj;
    g_autofree char *text = NULL;

    obj = bd_qemu_opts_parse("socket,id=c0,help,?,path=x", "backend", &err);
    g_assert_no_error(err);
    text = object_to_string(obj);
    g_assert_cmpstr(text, ==, "{\"id\":\"c0\",\"backend\":\"socket\","
                    "\"help\":\"on\",\"?\":\"on\",\"path\":\"x\"}");
    json_object_unref(obj);

    obj = bd_qemu_opts_parse("socket,id=,path=x", "backend", &err);
    g_assert_null(obj);
    g_assert_cmpstr(err->message, ==, ID_ERROR);
    g_clear_error(&err);
}

/* Without an implied key, a first element without '=' is a flag. */
static void test_no_implied_key(void)
{
    GError *err = NULL;
    g_autofree char *text = NULL;
    JsonObject *obj;

    obj = bd_qemu_opts_parse("socket,id=c0", NULL, &err);
    g_assert_no_error(err);
    text = object_to_string(obj);
    g_assert_cmpstr(text, ==, "{\"id\":\"c0\",\"socket\":\"on\"}");
    json_object_unref(obj);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *path = g_strdup_printf("/qemu-opts/parse/%03zu", i);

        g_test_add_data_func(path, &cases[i], test_case);
        g_free(path);
    }
    g_test_add_func("/qemu-opts/no-help-pointer", test_no_help_pointer);
    g_test_add_func("/qemu-opts/no-implied-key", test_no_implied_key);
    return g_test_run();
}
