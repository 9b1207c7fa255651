/*
 * Unit tests of the daemon's lifecycle pieces: trace point patterns and
 * output, shutdown notifiers, the pid file and its lock, and systemd
 * readiness messages.
 */
/* F_OFD_GETLK */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "aio/main-loop.h"
#include "os/pidfile.h"
#include "os/systemd.h"
#include "util/trace.h"

BD_TRACE_DEFINE(tp_alpha_one, "alpha_one");
BD_TRACE_DEFINE(tp_alpha_two, "alpha_two");
BD_TRACE_DEFINE(tp_beta, "beta");

static char *make_dir(void)
{
    g_autoptr(GError) err = NULL;
    char *dir = g_dir_make_tmp("blockd-unit-XXXXXX", &err);

    g_assert_no_error(err);
    return dir;
}

static void remove_dir(const char *dir, const char *const *files)
{
    for (; *files; files++) {
        g_autofree char *p = g_build_filename(dir, *files, NULL);

        g_unlink(p);
    }
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void test_patterns(void)
{
    bd_trace_reset();
    bd_trace_register(&tp_alpha_one);
    bd_trace_register(&tp_alpha_one);   /* harmless */

    g_assert_true(bd_trace_is_pattern("a*"));
    g_assert_true(bd_trace_is_pattern("a?c"));
    g_assert_false(bd_trace_is_pattern("abc"));

    g_assert_true(bd_trace_enable_events("alpha_*"));
    g_assert_true(tp_alpha_one.enabled);
    /* a point registered later gets the patterns given so far */
    bd_trace_register(&tp_alpha_two);
    g_assert_true(tp_alpha_two.enabled);
    g_assert_true(bd_trace_enable_events("-alpha_two"));
    g_assert_false(tp_alpha_two.enabled);
    g_assert_true(tp_alpha_one.enabled);
    bd_trace_register(&tp_beta);
    g_assert_false(tp_beta.enabled);
    /* exact names: known or not, remembered either way */
    g_assert_false(bd_trace_enable_events("gamma"));
    g_assert_true(bd_trace_enable_events("beta"));
    g_assert_true(bd_trace_get_state("beta"));
    g_assert_false(bd_trace_get_state("gamma"));
    g_assert_true(bd_trace_exists("alpha_two"));
    bd_trace_reset();
    g_assert_false(tp_alpha_one.enabled);
    g_assert_false(tp_beta.enabled);
}

static void test_events_file(void)
{
    g_autofree char *dir = make_dir();
    g_autofree char *path = g_build_filename(dir, "events", NULL);
    g_autoptr(GPtrArray) unknown = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    static const char *const files[] = { "events", NULL };

    bd_trace_reset();
    bd_trace_register(&tp_alpha_one);
    bd_trace_register(&tp_alpha_two);
    bd_trace_register(&tp_beta);
    g_assert_true(g_file_set_contents(path,
                                      "# comment\n\nalpha_*\n-alpha_one\n"
                                      "nosuch\n#beta\n-nosuch2", -1, NULL));
    g_assert_true(bd_trace_read_events_file(path, unknown, &err));
    g_assert_no_error(err);
    g_assert_false(tp_alpha_one.enabled);
    g_assert_true(tp_alpha_two.enabled);
    g_assert_false(tp_beta.enabled);
    g_assert_cmpuint(unknown->len, ==, 2);
    g_assert_cmpstr(unknown->pdata[0], ==, "5\tnosuch");
    g_assert_cmpstr(unknown->pdata[1], ==, "7\tnosuch2");

    g_assert_false(bd_trace_read_events_file("/nonexistent/events", NULL,
                                             &err));
    g_assert_cmpstr(err->message, ==,
                    "/nonexistent/events: No such file or directory");
    bd_trace_reset();
    remove_dir(dir, files);
}

static void test_output_file(void)
{
    g_autofree char *dir = make_dir();
    g_autofree char *path = g_build_filename(dir, "trace.log", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    static const char *const files[] = { "trace.log", NULL };
    int evaluated = 0;

    bd_trace_reset();
    bd_trace_register(&tp_alpha_one);
    bd_trace_register(&tp_beta);
    g_assert_true(bd_trace_set_output(path, &err));
    bd_trace_enable_events("beta");
    BD_TRACE(&tp_beta, "x %d y %s", 42, "z");
    /* off: the arguments are not evaluated */
    BD_TRACE(&tp_alpha_one, "%d", ++evaluated);
    g_assert_cmpint(evaluated, ==, 0);
    BD_TRACE(&tp_beta, "again");
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "beta x 42 y z\nbeta again\n");

    g_assert_false(bd_trace_set_output("/nonexistent/dir/log", &err));
    g_assert_cmpstr(err->message, ==, "Error opening logfile "
                    "/nonexistent/dir/log: No such file or directory");
    bd_trace_reset();
    remove_dir(dir, files);
}

static GString *notifier_log;

static void note(void *opaque)
{
    g_string_append(notifier_log, opaque);
}

static void note_and_add(void *opaque)
{
    note(opaque);
    bd_shutdown_add_notifier(note, (void *)"late ");
}

static void test_shutdown_notifiers(void)
{
    notifier_log = g_string_new(NULL);
    bd_shutdown_add_notifier(note, (void *)"first ");
    bd_shutdown_add_notifier(note_and_add, (void *)"second ");
    bd_shutdown_add_notifier(note, (void *)"gone ");
    bd_shutdown_add_notifier(note, (void *)"third ");
    bd_shutdown_remove_notifier(note, (void *)"gone ");
    bd_shutdown_run_notifiers();
    g_assert_cmpstr(notifier_log->str, ==, "third second late first ");
    /* each runs once */
    bd_shutdown_run_notifiers();
    g_assert_cmpstr(notifier_log->str, ==, "third second late first ");
    g_string_free(notifier_log, true);
}

static void test_pidfile(void)
{
    g_autofree char *dir = make_dir();
    g_autofree char *path = g_build_filename(dir, "d.pid", NULL);
    g_autofree char *text = NULL;
    g_autofree char *expected = g_strdup_printf("%d\n", (int)getpid());
    g_autoptr(GError) err = NULL;
    static const char *const files[] = { NULL };
    struct stat st;

    g_assert_true(g_file_set_contents(path, "stale contents, longer\n", -1,
                                      NULL));
    g_assert_true(bd_pidfile_write(path, &err));
    g_assert_no_error(err);
    /*
     * Test the lock before reading the file here: closing any fd of the
     * file drops a process's fcntl locks on it.
     */
    /*
     * Another process finds it locked.  An open file description lock
     * conflicts with a record lock even of the same process, so
     * F_OFD_GETLK on a second descriptor sees the lock without a fork (a
     * forked child would be leak-checked by valgrind on its way out).
     */
    {
        struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        int fd = open(path, O_RDWR);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(fcntl(fd, F_OFD_GETLK, &probe), ==, 0);
        g_assert_cmpint(probe.l_type, ==, F_WRLCK);
        close(fd);
    }
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, expected);

    bd_pidfile_remove();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    bd_pidfile_remove();        /* idempotent */

    g_clear_pointer(&path, g_free);
    path = g_build_filename(dir, "nodir", "d.pid", NULL);
    g_assert_false(bd_pidfile_write(path, &err));
    g_assert_true(g_str_has_prefix(err->message, "Could not create '"));
    g_assert_true(g_str_has_suffix(err->message,
                                   "': No such file or directory"));
    remove_dir(dir, files);
}

static void test_notify(void)
{
    g_autofree char *dir = make_dir();
    g_autofree char *path = g_build_filename(dir, "notify", NULL);
    static const char *const files[] = { "notify", NULL };
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char buf[64];
    ssize_t n;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);

    g_unsetenv("NOTIFY_SOCKET");
    g_assert_true(bd_systemd_notify("READY=1"));     /* nobody to tell */
    g_setenv("NOTIFY_SOCKET", path, true);
    g_assert_true(bd_systemd_notify("READY=1"));
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    g_assert_cmpint(n, ==, 7);
    g_assert_cmpmem(buf, n, "READY=1", 7);
    g_setenv("NOTIFY_SOCKET", "relative", true);
    g_assert_false(bd_systemd_notify("STOPPING=1"));
    g_unsetenv("NOTIFY_SOCKET");
    close(fd);
    remove_dir(dir, files);
}

static void test_activation_env(void)
{
    /* another process's fds: ignored, and the variables are gone */
    g_autofree char *other = g_strdup_printf("%d", (int)getpid() + 1);

    g_setenv("LISTEN_PID", other, true);
    g_setenv("LISTEN_FDS", "1", true);
    g_setenv("LISTEN_FDNAMES", "qmp", true);
    bd_socket_activation_init();
    g_assert_cmpint(bd_socket_activation_fd("qmp"), ==, -1);
    g_assert_cmpuint(bd_socket_activation_unused(), ==, 0);
    g_assert_null(g_getenv("LISTEN_PID"));
    g_assert_null(g_getenv("LISTEN_FDS"));
    g_assert_null(g_getenv("LISTEN_FDNAMES"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/trace/patterns", test_patterns);
    g_test_add_func("/trace/events-file", test_events_file);
    g_test_add_func("/trace/output-file", test_output_file);
    g_test_add_func("/lifecycle/shutdown-notifiers", test_shutdown_notifiers);
    g_test_add_func("/lifecycle/pidfile", test_pidfile);
    g_test_add_func("/systemd/notify", test_notify);
    g_test_add_func("/systemd/activation-env", test_activation_env);
    return g_test_run();
}
