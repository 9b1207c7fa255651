/*
 * The QMP dispatcher, monitors and character devices, in process: real
 * UNIX sockets in a private directory, the real main loop.
 *
 * /qmp/observed replays what qemu-storage-daemon 7.2 answered (recorded in
 * tests/unit/qmp-observed.json by tests/integration/test_qmp_session.py)
 * and demands the same bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "blockd-config.h"
#include "chardev/chardev.h"
#include "cli/chardev-cli.h"
#include "json/json-stream.h"
#include "json/json-writer.h"
#include "monitor/monitor.h"
#include "plugin/plugin-loader.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "qmp/qmp-event.h"

static char *tmpdir;

static void setup(void)
{
    g_autoptr(GError) err = NULL;

    tmpdir = g_dir_make_tmp("blockd-test-qmp-XXXXXX", &err);
    g_assert_no_error(err);
    g_chmod(tmpdir, 0700);
    bd_qmp_dispatch_reset();
    bd_qmp_register_core_commands();
    bd_chardev_register_qmp_commands();
}

static void teardown(void)
{
    bd_monitors_free_all();
    bd_chardev_remove_all();
    bd_qmp_dispatch_reset();
    /* every socket file we created must be gone */
    g_assert_cmpint(g_rmdir(tmpdir), ==, 0);
    g_clear_pointer(&tmpdir, g_free);
}

static char *sock_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static BdChardev *add_unix_chardev(const char *id, const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *json = g_strdup_printf(
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", "
        "\"data\": {\"path\": \"%s\"}}, \"server\": true, \"wait\": false}}",
        path);
    g_autoptr(JsonNode) backend = bd_json_parse(json, &err);
    BdChardev *chr;

    g_assert_no_error(err);
    chr = bd_chardev_new(id, json_node_get_object(backend), &err);
    g_assert_no_error(err);
    return chr;
}

static BdMonitor *add_monitor(const char *id, bool pretty, char **path_out)
{
    g_autoptr(GError) err = NULL;
    char *path = sock_path(id);
    BdMonitor *mon;

    add_unix_chardev(id, path);
    mon = bd_monitor_new(id, pretty, &err);
    g_assert_no_error(err);
    *path_out = path;
    return mon;
}

static int client_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/*
 * Run the main loop and collect what @fd receives until @until appears
 * (or, with @until NULL, until nothing more comes for a short while).
 */
static char *client_read(int fd, const char *until)
{
    GString *got = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    gint64 quiet = 0;

    while (g_get_monotonic_time() < deadline) {
        char buf[65536];
        ssize_t n;

        while (g_main_context_iteration(NULL, false)) {
        }
        n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            g_string_append_len(got, buf, n);
            quiet = 0;
            if (until && strstr(got->str, until)) {
                break;
            }
            continue;
        }
        if (n == 0) {
            break;
        }
        if (!until && ++quiet > 20) {
            break;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        poll(&pfd, 1, 10);
    }
    return g_string_free(got, false);
}

static void client_send(int fd, const char *data, size_t len)
{
    g_assert_cmpint(send(fd, data, len, MSG_NOSIGNAL), ==, (ssize_t)len);
}

#define SEND(fd, s) client_send(fd, s, strlen(s))

/* Send @req and return everything up to its reply (sync by id). */
static char *client_exchange(int fd, const char *req, size_t len,
                             bool pretty)
{
    static int sync;
    g_autofree char *marker = g_strdup_printf("\"sync-%d\"", ++sync);
    g_autofree char *sreq = g_strdup_printf(
        "{\"execute\":\"query-version\",\"id\":\"sync-%d\"}\n", sync);
    char *got, *at, *start;
    const char *sep = pretty ? "\r\n{\r\n" : "\r\n";

    client_send(fd, req, len);
    SEND(fd, sreq);
    got = client_read(fd, marker);
    at = strstr(got, marker);
    g_assert_nonnull(at);
    /* cut at the beginning of the message holding the marker */
    start = NULL;
    for (char *p = got; (p = strstr(p, sep)) && p < at; p++) {
        start = p;
    }
    if (start) {
        start[2] = '\0';
    } else {
        got[0] = '\0';
    }
    if (pretty) {
        /* read the rest of the sync reply so it does not linger */
        g_free(client_read(fd, NULL));
    }
    return got;
}

static char *expected_package(const char *text)
{
    g_auto(GStrv) parts = g_strsplit(text, "@PACKAGE@", -1);

    return g_strjoinv("blockd " BLOCKD_VERSION, parts);
}

/* latin-1 code points back to bytes */
static GByteArray *latin1_bytes(const char *utf8)
{
    GByteArray *b = g_byte_array_new();

    for (const char *p = utf8; *p; p = g_utf8_next_char(p)) {
        guint8 c = (guint8)g_utf8_get_char(p);

        g_byte_array_append(b, &c, 1);
    }
    return b;
}

/* the exact request bytes (JSON strings cannot carry NUL through) */
static GByteArray *hex_bytes(const char *hex)
{
    GByteArray *b = g_byte_array_new();

    for (const char *p = hex; p[0] && p[1]; p += 2) {
        guint8 c = (guint8)(g_ascii_xdigit_value(p[0]) * 16 +
                            g_ascii_xdigit_value(p[1]));

        g_byte_array_append(b, &c, 1);
    }
    return b;
}

static char *observed_path(void)
{
    /* tests/unit/, beside this file's folder (the integration test's too) */
    g_autofree char *here = g_path_get_dirname(__FILE__);
    g_autofree char *dir = g_path_get_dirname(here);

    if (g_path_is_absolute(dir)) {
        return g_build_filename(dir, "qmp-observed.json", NULL);
    }
    return g_build_filename(BLOCKD_BUILD_ROOT, dir, "qmp-observed.json",
                            NULL);
}

static void test_observed(void)
{
    g_autofree char *file = observed_path();
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonObject *sessions;
    g_autoptr(GList) names = NULL;
    unsigned compared = 0;

    setup();
    json_parser_load_from_file(parser, file, &err);
    g_assert_no_error(err);
    sessions = json_object_get_object_member(
        json_node_get_object(json_parser_get_root(parser)), "sessions");
    names = json_object_get_members(sessions);
    for (GList *l = names; l; l = l->next) {
        JsonObject *sess = json_object_get_object_member(sessions, l->data);
        bool pretty = json_object_get_boolean_member(sess, "pretty");
        JsonArray *ex = json_object_get_array_member(sess, "exchanges");
        g_autofree char *path = NULL;
        BdMonitor *mon = add_monitor("qmp0", pretty, &path);
        int fd = client_connect(path);
        g_autofree char *greeting = client_read(fd, pretty ? "\r\n}\r\n"
                                                           : "\r\n");
        g_autofree char *want_greeting = expected_package(
            json_object_get_string_member(sess, "greeting"));

        g_assert_cmpstr(greeting, ==, want_greeting);
        for (guint i = 0; i < json_array_get_length(ex); i++) {
            JsonObject *e = json_array_get_object_element(ex, i);
            g_autoptr(GByteArray) req = hex_bytes(
                json_object_get_string_member(e, "request-hex"));
            g_autoptr(GByteArray) want = latin1_bytes(
                json_object_get_string_member(e, "reply"));
            g_autofree char *got = client_exchange(fd, (char *)req->data,
                                                   req->len, pretty);
            g_autofree char *want_text = NULL;

            if (json_object_get_boolean_member(e, "needs-schema")) {
                continue;       /* argument validation: the schema engine */
            }
            g_byte_array_append(want, (const guint8 *)"", 1);
            want_text = expected_package((char *)want->data);
            if (g_strcmp0(got, want_text) != 0) {
                g_test_message("request %u: %s", i,
                               json_object_get_string_member(e, "request"));
            }
            g_assert_cmpstr(got, ==, want_text);
            compared++;
        }
        close(fd);
        bd_monitor_free(mon);
        g_assert_true(bd_chardev_remove("qmp0", NULL));
    }
    g_assert_cmpuint(compared, >, 50);
    teardown();
}

static void test_one_client_at_a_time(void)
{
    g_autofree char *path = NULL;
    g_autofree char *g1 = NULL, *g2 = NULL, *r = NULL;
    int a, b;

    setup();
    add_monitor("m", false, &path);
    a = client_connect(path);
    g1 = client_read(a, "\r\n");
    g_assert_true(g_str_has_prefix(g1, "{\"QMP\": "));
    /* the second client waits in the listen queue: no greeting */
    b = client_connect(path);
    g2 = client_read(b, NULL);
    g_assert_cmpstr(g2, ==, "");
    close(a);
    g_free(g2);
    g2 = client_read(b, "\r\n");
    g_assert_true(g_str_has_prefix(g2, "{\"QMP\": "));
    r = client_exchange(b, "{\"execute\":\"qmp_capabilities\"}", 30, false);
    g_assert_cmpstr(r, ==, "{\"return\": {}}\r\n");
    close(b);
    teardown();
}

static void test_events(void)
{
    g_autofree char *p1 = NULL, *p2 = NULL;
    g_autofree char *r = NULL, *ev = NULL, *none = NULL;
    g_autoptr(JsonObject) data = json_object_new();
    int a, b;

    setup();
    add_monitor("m1", false, &p1);
    add_monitor("m2", false, &p2);
    a = client_connect(p1);
    b = client_connect(p2);
    g_free(client_read(a, "\r\n"));
    g_free(client_read(b, "\r\n"));
    r = client_exchange(a, "{\"execute\":\"qmp_capabilities\"}", 30, false);
    g_assert_cmpstr(r, ==, "{\"return\": {}}\r\n");

    json_object_set_string_member(data, "id", "exp0");
    bd_qmp_event_emit("BLOCK_EXPORT_DELETED", data);
    ev = client_read(a, "\r\n");
    g_assert_true(g_regex_match_simple(
        "^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": "
        "[0-9]+\\}, \"event\": \"BLOCK_EXPORT_DELETED\", "
        "\"data\": \\{\"id\": \"exp0\"\\}\\}\r\n$", ev, 0, 0));
    /* not negotiated yet: no events */
    none = client_read(b, NULL);
    g_assert_cmpstr(none, ==, "");
    close(a);
    close(b);
    teardown();
}

static void test_garbage_client_harms_nobody(void)
{
    g_autofree char *p1 = NULL, *p2 = NULL, *r = NULL;
    int bad, good;
    char junk[8192];

    setup();
    add_monitor("m1", false, &p1);
    add_monitor("m2", false, &p2);
    bad = client_connect(p1);
    good = client_connect(p2);
    g_free(client_read(good, "\r\n"));
    memset(junk, '[', sizeof(junk));
    /* a flood of nesting and garbage, never read, then a hang-up */
    for (int i = 0; i < 64; i++) {
        send(bad, junk, sizeof(junk), MSG_NOSIGNAL);
        send(bad, "\xff\x01}}}", 5, MSG_NOSIGNAL);
        while (g_main_context_iteration(NULL, false)) {
        }
    }
    r = client_exchange(good, "{\"execute\":\"qmp_capabilities\"}", 30,
                        false);
    g_assert_cmpstr(r, ==, "{\"return\": {}}\r\n");
    close(bad);
    g_free(r);
    r = client_exchange(good, "{\"execute\":\"query-chardev-backends\"}",
                        36, false);
    g_assert_cmpstr(r, ==, "{\"return\": [{\"name\": \"pipe\"}, "
                    "{\"name\": \"null\"}, {\"name\": \"ringbuf\"}, "
                    "{\"name\": \"stdio\"}, {\"name\": \"socket\"}, "
                    "{\"name\": \"file\"}, {\"name\": \"memory\"}, "
                    "{\"name\": \"udp\"}, {\"name\": \"pty\"}]}\r\n");
    close(good);
    teardown();
}

static void test_chardev_commands(void)
{
    g_autofree char *path = NULL, *c2 = NULL;
    g_autofree char *add = NULL, *r = NULL, *want = NULL;
    int fd;

    setup();
    c2 = sock_path("c2");
    add_monitor("m", false, &path);
    fd = client_connect(path);
    g_free(client_read(fd, "\r\n"));
    g_free(client_exchange(fd, "{\"execute\":\"qmp_capabilities\"}", 30,
                           false));
    r = client_exchange(fd, "{\"execute\":\"chardev-remove\","
                        "\"arguments\":{\"id\":\"m\"}}", 51, false);
    g_assert_cmpstr(r, ==, "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"Chardev 'm' is busy\"}}\r\n");
    add = g_strdup_printf("{\"execute\":\"chardev-add\",\"arguments\":"
                          "{\"id\":\"c2\",\"backend\":{\"type\":\"socket\","
                          "\"data\":{\"addr\":{\"type\":\"unix\",\"data\":"
                          "{\"path\":\"%s\"}},\"wait\":false}}}}", c2);
    g_free(r);
    r = client_exchange(fd, add, strlen(add), false);
    g_assert_cmpstr(r, ==, "{\"return\": {}}\r\n");
    g_assert_true(g_file_test(c2, G_FILE_TEST_EXISTS));
    g_free(r);
    r = client_exchange(fd, "{\"execute\":\"query-chardev\"}", 27, false);
    want = g_strdup_printf(
        "{\"return\": [{\"frontend-open\": false, \"filename\": "
        "\"disconnected:unix:%s,server=on\", \"label\": \"c2\"}, "
        "{\"frontend-open\": true, \"filename\": \"unix:%s,server=on\", "
        "\"label\": \"m\"}]}\r\n", c2, path);
    g_assert_cmpstr(r, ==, want);
    g_free(r);
    r = client_exchange(fd, "{\"execute\":\"chardev-remove\","
                        "\"arguments\":{\"id\":\"c2\"}}", 52, false);
    g_assert_cmpstr(r, ==, "{\"return\": {}}\r\n");
    /* blockd created it, so blockd removed it */
    g_assert_false(g_file_test(c2, G_FILE_TEST_EXISTS));
    close(fd);
    teardown();
}

static void test_existing_path_kept(void)
{
    g_autofree char *path = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) opts = json_object_new();

    setup();
    path = sock_path("taken");
    g_assert_true(g_file_set_contents(path, "mine", -1, NULL));
    json_object_set_string_member(opts, "backend", "socket");
    json_object_set_string_member(opts, "id", "x");
    json_object_set_string_member(opts, "path", path);
    json_object_set_string_member(opts, "server", "on");
    json_object_set_string_member(opts, "wait", "off");
    g_assert_null(bd_chardev_new_from_opts(opts, &err));
    g_assert_nonnull(strstr(err->message, "Failed to bind socket to"));
    /* never unlinked */
    g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
    g_unlink(path);

    /* flat-option mistakes, with qemu-storage-daemon's messages */
    json_object_set_string_member(opts, "server", "maybe");
    g_clear_error(&err);
    g_assert_null(bd_chardev_new_from_opts(opts, &err));
    g_assert_cmpstr(err->message, ==,
                    "Parameter 'server' expects 'on' or 'off'");
    json_object_set_string_member(opts, "server", "off");
    g_clear_error(&err);
    g_assert_null(bd_chardev_new_from_opts(opts, &err));
    g_assert_cmpstr(err->message, ==, "'wait' option is incompatible with "
                    "socket in client connect mode");
    /* a client connects at once: nobody listens there */
    json_object_remove_member(opts, "wait");
    g_clear_error(&err);
    g_assert_null(bd_chardev_new_from_opts(opts, &err));
    g_autofree char *refused = g_strdup_printf(
        "Failed to connect to '%s': No such file or directory", path);
    g_assert_cmpstr(err->message, ==, refused);
    json_object_set_string_member(opts, "bogus", "1");
    g_clear_error(&err);
    g_assert_null(bd_chardev_new_from_opts(opts, &err));
    g_assert_cmpstr(err->message, ==, "Invalid parameter 'bogus'");
    g_clear_error(&err);
    g_assert_null(bd_monitor_new("nope", false, &err));
    g_assert_cmpstr(err->message, ==, "chardev \"nope\" not found");
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    teardown();
}

/* ---- dispatcher ---- */

static bool cmd_echo(JsonObject *args, JsonNode **ret, GError **errp)
{
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(*ret, args);
    return true;
}

static bool cmd_fail(JsonObject *args, JsonNode **ret, GError **errp)
{
    g_set_error(errp, BD_ERROR, BD_ERROR_DEVICE_NOT_FOUND, "no such thing");
    return false;
}

static bool reject_all(const char *command, JsonObject *args,
                       JsonObject **out, GError **errp)
{
    if (json_object_has_member(args, "bad")) {
        bd_error_setg(errp, "Parameter 'bad' is unexpected");
        return false;
    }
    *out = json_object_new();
    json_object_set_boolean_member(*out, "checked", true);
    return true;
}

static char *dispatch_text(BdQmpSession *s, const char *req)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = bd_json_parse(req, &err);
    g_autoptr(JsonObject) rsp = NULL;

    g_assert_no_error(err);
    rsp = bd_qmp_dispatch(s, node, NULL);
    return bd_qmp_json_format_object(rsp, false);
}

static void test_dispatch(void)
{
    BdQmpSession s = { .negotiated = true, .oob_enabled = true };
    g_autofree char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;

    setup();
    bd_qmp_register_command("x-echo", cmd_echo, BD_QMP_ALLOW_OOB);
    bd_qmp_register_command("x-fail", cmd_fail, 0);
    a = dispatch_text(&s, "{'execute': 'x-echo', 'arguments': {'k': 1}, "
                          "'id': [1]}");
    g_assert_cmpstr(a, ==, "{\"return\": {\"k\": 1}, \"id\": [1]}");
    b = dispatch_text(&s, "{'exec-oob': 'x-fail'}");
    g_assert_cmpstr(b, ==, "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"The command x-fail does not support "
                    "OOB\"}}");
    c = dispatch_text(&s, "{'execute': 'x-fail'}");
    g_assert_cmpstr(c, ==, "{\"error\": {\"class\": \"DeviceNotFound\", "
                    "\"desc\": \"no such thing\"}}");

    /* once installed, the checker's verdict and output are what count */
    bd_qmp_set_argument_checker(reject_all);
    d = dispatch_text(&s, "{'execute': 'x-echo', 'arguments': {'bad': 1}}");
    g_assert_cmpstr(d, ==, "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"Parameter 'bad' is unexpected\"}}");
    e = dispatch_text(&s, "{'exec-oob': 'x-echo'}");
    g_assert_cmpstr(e, ==, "{\"return\": {\"checked\": true}}");

    /* query-commands lists core commands, newest first */
    g_autoptr(GPtrArray) names = bd_qmp_command_names();
    g_assert_cmpstr(g_ptr_array_index(names, 0), ==, "x-fail");
    g_assert_true(g_ptr_array_find_with_equal_func(names, "query-plugins",
                                                   g_str_equal, NULL));
    teardown();
}

static void test_query_plugins(void)
{
    BdQmpSession s = { .negotiated = true };
    g_auto(GStrv) dirs = bd_plugin_dirs(NULL);
    g_autofree char *r = NULL;

    setup();
    bd_plugins_discover(dirs);
    r = dispatch_text(&s, "{'execute': 'query-plugins'}");
    /* block-null is built with the tree */
    g_assert_nonnull(strstr(r, "\"name\": \"block-null\""));
    g_assert_nonnull(strstr(r, "\"abi\": \"1.0\""));
    g_assert_nonnull(strstr(r, "\"block-drivers\": [\"null-co\""));
    bd_plugins_reset();
    teardown();
}

/* Events reach the sinks registered, in order, and no removed one. */
static void sink_record(JsonObject *event, void *opaque)
{
    GString *seen = opaque;

    g_string_append_printf(seen, "%s;",
                           json_object_get_string_member(event, "event"));
}

static void test_event_sinks(void)
{
    g_autoptr(GString) a = g_string_new("");
    g_autoptr(GString) b = g_string_new("");

    bd_qmp_event_add_sink(sink_record, a);
    bd_qmp_event_add_sink(sink_record, b);
    bd_qmp_event_emit("ONE", NULL);
    bd_qmp_event_remove_sink(sink_record, a);
    bd_qmp_event_emit("TWO", NULL);
    bd_qmp_event_remove_sink(sink_record, b);
    bd_qmp_event_emit("THREE", NULL);
    g_assert_cmpstr(a->str, ==, "ONE;");
    g_assert_cmpstr(b->str, ==, "ONE;TWO;");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/qmp/observed", test_observed);
    g_test_add_func("/qmp/one-client-at-a-time", test_one_client_at_a_time);
    g_test_add_func("/qmp/events", test_events);
    g_test_add_func("/qmp/event-sinks", test_event_sinks);
    g_test_add_func("/qmp/garbage-client", test_garbage_client_harms_nobody);
    g_test_add_func("/qmp/chardev-commands", test_chardev_commands);
    g_test_add_func("/qmp/existing-path-kept", test_existing_path_kept);
    g_test_add_func("/qmp/dispatch", test_dispatch);
    g_test_add_func("/qmp/query-plugins", test_query_plugins);
    return g_test_run();
}
