/*
 * blockd: the daemon's entry point and command line.
 *
 * The command line is qemu-storage-daemon's; options are processed in the
 * order given.  The exceptions: -h, -V and --daemonize act before all
 * others, as in qemu-storage-daemon (see prepass()), and --plugin-dir is
 * read before anything else, because every other option may need a
 * plugin.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include <blockd/error.h>

#include "blockd-config.h"
#include "chardev/chardev.h"
#include "cli/blockdev-cli.h"
#include "cli/chardev-cli.h"
#include "cli/cli-help.h"
#include "cli/export-cli.h"
#include "cli/monitor-cli.h"
#include "core-init.h"
#include "aio/main-loop.h"
#include "cli/keyval.h"
#include "cli/nbd-server-cli.h"
#include "cli/object-cli.h"
#include "monitor/monitor.h"
#include "object/object.h"
#include "os/daemonize.h"
#include "os/pidfile.h"
#include "os/systemd.h"
#include "plugin/plugin-list.h"
#include "plugin/plugin-loader.h"
#include "plugin/plugin-schema.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"
#include "util/trace-points.h"
#include "util/trace.h"

enum {
    OPT_BLOCKDEV = 256,
    OPT_CHARDEV,
    OPT_DAEMONIZE,
    OPT_EXPORT,
    OPT_MONITOR,
    OPT_NBD_SERVER,
    OPT_OBJECT,
    OPT_PIDFILE,
    OPT_PLUGIN_DIR,
    OPT_LIST_PLUGINS,
};

static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "trace", required_argument, NULL, 'T' },
    { "blockdev", required_argument, NULL, OPT_BLOCKDEV },
    { "chardev", required_argument, NULL, OPT_CHARDEV },
    { "daemonize", no_argument, NULL, OPT_DAEMONIZE },
    { "export", required_argument, NULL, OPT_EXPORT },
    { "monitor", required_argument, NULL, OPT_MONITOR },
    { "nbd-server", required_argument, NULL, OPT_NBD_SERVER },
    { "object", required_argument, NULL, OPT_OBJECT },
    { "pidfile", required_argument, NULL, OPT_PIDFILE },
    { "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
    { "list-plugins", no_argument, NULL, OPT_LIST_PLUGINS },
    { NULL, 0, NULL, 0 },
};

static const char short_options[] = "-hVT:";

static void print_help(const char *prog)
{
    printf(
"Usage: %s [options]\n"
"blockd: a storage daemon for disk images, a drop-in replacement for\n"
"qemu-storage-daemon built from a small core and loadable plugins\n"
"\n"
"  -h, --help             print this help and exit\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
"                         enable trace points\n"
"  -V, --version          print the version and exit\n"
"\n"
"  --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]\n"
"             [,cache.direct=on|off][,cache.no-flush=on|off]\n"
"             [,read-only=on|off][,auto-read-only=on|off]\n"
"             [,force-share=on|off][,detect-zeroes=on|off|unmap]\n"
"             [,driver specific parameters...]\n"
"                         add a block node\n"
"  --chardev <options>    add a character device (a socket for --monitor)\n"
"  --daemonize            run in the background; the parent exits once\n"
"                         start-up has completed\n"
"  --export [type=]<type>,id=<id>,node-name=<node-name>[,...]\n"
"                         export a block node (the types are those of the\n"
"                         installed export plugins: see --list-plugins)\n"
"  --monitor [chardev=]<name>[,mode=control][,pretty[=on|off]]\n"
"                         serve QMP on a character device\n"
"  --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>\n"
"               [,tls-creds=<id>][,tls-authz=<id>][,max-connections=<n>]\n"
"  --nbd-server addr.type=unix,addr.path=<path>\n"
"               [,tls-creds=<id>][,tls-authz=<id>][,max-connections=<n>]\n"
"  --nbd-server addr.type=fd,addr.str=<fd>\n"
"               [,tls-creds=<id>][,tls-authz=<id>][,max-connections=<n>]\n"
"                         start the NBD server\n"
"  --object help          list the object types\n"
"  --object <type>,help   list the properties of an object type\n"
"  --object <type>[,<property>=<value>...]\n"
"                         create an object (secrets, tls-creds-*, authz-*,\n"
"                         iothread, ...)\n"
"  --pidfile <path>       write the process id to <path> once ready\n"
"\n"
"  --plugin-dir <dir>[:<dir>...]\n"
"                         load plugins from these directories instead of\n"
"                         $BLOCKD_PLUGIN_DIR or %s\n"
"  --list-plugins         list the plugins found, what they provide, and\n"
"                         why any of them cannot be used, then exit\n"
"\n"
"The --blockdev, --export, --object, --nbd-server, --chardev and --monitor\n"
"arguments follow QMP's blockdev-add, block-export-add, object-add,\n"
"nbd-server-start, chardev-add and the monitor's options; see\n"
"blockd(8) and blockd-qmp-ref(7).\n",
        prog, BLOCKD_PLUGIN_DIR);
}

static void print_version(void)
{
    printf("blockd version %s\n"
           "Compatible with qemu-storage-daemon %s: QMP reports QEMU "
           "version %s.\n",
           BLOCKD_VERSION, BLOCKD_QEMU_COMPAT_SERIES,
           BLOCKD_QEMU_COMPAT_VERSION);
}

/*
 * Find --plugin-dir before the real parse, so that options processed in
 * order can use plugins whatever their position.
 */
static const char *prescan_plugin_dir(int argc, char **argv)
{
    const char *dir = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--plugin-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (g_str_has_prefix(argv[i], "--plugin-dir=")) {
            dir = argv[i] + strlen("--plugin-dir=");
        }
    }
    return dir;
}

static const char *option_name(int c)
{
    for (const struct option *o = long_options; o->name; o++) {
        if (o->val == c) {
            return o->name;
        }
    }
    return "?";
}

/* ---- --chardev and --monitor (cli/chardev-cli.c, cli/monitor-cli.c) ---- */

static void print_option_error(const char *prog, int opt, const char *arg,
                               const GError *err)
{
    fprintf(stderr, "%s: --%s %s: %s\n", prog, option_name(opt), arg,
            err->message);
}

/*
 * The pre-pass, as qemu-storage-daemon does it: -h, -V, --daemonize and
 * the mistakes getopt itself finds (unknown options, missing arguments)
 * are handled before every other option, wherever they are.  So help and
 * version create nothing, a typo is reported before anything is set up,
 * and --daemonize forks before the first option takes effect.
 */
typedef enum PrepassResult {
    PREPASS_GO_ON,
    PREPASS_EXIT_SUCCESS,
    PREPASS_FAIL,
} PrepassResult;

static PrepassResult prepass(const char *prog, int argc, char **argv,
                             bool *daemonize)
{
    int c;

    optind = 0;         /* glibc: start a new scan from scratch */
    opterr = 1;
    while ((c = getopt_long(argc, argv, short_options, long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            print_help(prog);
            return PREPASS_EXIT_SUCCESS;
        case 'V':
            print_version();
            return PREPASS_EXIT_SUCCESS;
        case OPT_DAEMONIZE:
            *daemonize = true;
            break;
        case '?':
            /* getopt_long has printed the one-line reason */
            return PREPASS_FAIL;
        default:
            break;
        }
    }
    return PREPASS_GO_ON;
}

/*
 * Everything set up goes, newest first: subsystems (their shutdown
 * notifiers), monitors, chardevs (and the socket files blockd created),
 * the pid file.  Used on every way out, so that a failed start-up leaves
 * nothing behind either.
 */
static void tear_down(void)
{
    bd_shutdown_run_notifiers();
    bd_monitors_free_all();
    bd_chardev_remove_all();
    bd_objects_delete_all();
    bd_pidfile_remove();
    bd_plugins_reset();
}

int main(int argc, char **argv)
{
    const char *prog = "blockd";
    bool daemonize = false;
    bool list_plugins = false;
    const char *pidfile = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) dirs = NULL;
    int status = EXIT_FAILURE;
    int c;

    /* getopt_long names the program by argv[0] in its messages */
    argv[0] = (char *)prog;

    bd_trace_register_core();
    /* before any fork: LISTEN_PID names the process systemd started */
    bd_socket_activation_init();

    switch (prepass(prog, argc, argv, &daemonize)) {
    case PREPASS_EXIT_SUCCESS:
        return EXIT_SUCCESS;
    case PREPASS_FAIL:
        return EXIT_FAILURE;
    case PREPASS_GO_ON:
        break;
    }
    /* errors from here on still reach the caller's stderr */
    if (daemonize && !bd_daemonize_start(&err)) {
        fprintf(stderr, "%s: %s\n", prog, err->message);
        return EXIT_FAILURE;
    }

    dirs = bd_plugin_dirs(prescan_plugin_dir(argc, argv));
    bd_plugins_discover(dirs);
    bd_plugins_warn_dirs(stderr, prog);
    if (!bd_core_init(&err)) {
        fprintf(stderr, "%s: %s\n", prog, err->message);
        return EXIT_FAILURE;
    }

    /* Processed in order, like qemu-storage-daemon. */
    optind = 0;
    opterr = 0;         /* the pre-pass has reported any getopt error */
    while ((c = getopt_long(argc, argv, short_options, long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
        case 'V':
        case OPT_DAEMONIZE:
            /* done by the pre-pass */
            break;
        case OPT_PLUGIN_DIR:
            /* already applied by prescan_plugin_dir() */
            break;
        case OPT_LIST_PLUGINS:
            list_plugins = true;
            break;
        case 'T':
            switch (bd_trace_option(prog, optarg)) {
            case BD_TRACE_OPTION_OK:
                break;
            case BD_TRACE_OPTION_EXIT:
                status = EXIT_SUCCESS;
                goto out;
            case BD_TRACE_OPTION_FAILED:
                goto out;
            }
            break;
        case OPT_PIDFILE:
            /* the last one counts; written once set-up is complete */
            pidfile = optarg;
            break;
        case OPT_CHARDEV:
        case OPT_MONITOR: {
            bool exit_now = false;
            bool ok = c == OPT_CHARDEV
                ? bd_chardev_cli_option(prog, optarg, &exit_now, &err)
                : bd_monitor_cli_option(optarg, &err);
            if (!ok) {
                print_option_error(prog, c, optarg, err);
                g_clear_error(&err);
            }
            if (!ok || exit_now) {
                status = ok ? EXIT_SUCCESS : EXIT_FAILURE;
                goto out;
            }
            break;
        }
        case OPT_OBJECT: {
            bool exit_now = false;
            bool ok = bd_object_cli_option(prog, optarg, &exit_now);
            if (!ok || exit_now) {
                status = ok ? EXIT_SUCCESS : EXIT_FAILURE;
                goto out;
            }
            break;
        }
        case OPT_BLOCKDEV:
        case OPT_EXPORT: {
            bool was_help = false;
            bool ok = c == OPT_BLOCKDEV
                ? bd_cli_blockdev_help(prog, optarg, &was_help)
                : bd_cli_export_help(prog, optarg, &was_help);
            if (ok && !was_help) {
                if (c == OPT_EXPORT ? !bd_export_cli_option(optarg, &err)
                                    : !bd_blockdev_cli_option(optarg, &err)) {
                    print_option_error(prog, c, optarg, err);
                    ok = false;
                }
            }
            if (!ok || was_help) {
                status = ok ? EXIT_SUCCESS : EXIT_FAILURE;
                goto out;
            }
            break;
        }
        case OPT_NBD_SERVER:
            if (!bd_nbd_server_cli_option(optarg, &err)) {
                print_option_error(prog, c, optarg, err);
                goto out;
            }
            break;
        case 1:
            fprintf(stderr, "%s: %s: Unexpected argument\n", prog, optarg);
            goto out;
        case '?':
            goto out;
        default:
            fprintf(stderr, "%s: --%s is not supported yet\n", prog,
                    option_name(c));
            goto out;
        }
    }

    if (list_plugins) {
        bd_plugins_load_all();
        bd_plugins_print(stdout);
        status = EXIT_SUCCESS;
        goto out;
    }

    bd_plugins_warn_failed(stderr, prog);

    /*
     * Set-up is complete.  Signals end the daemon cleanly from here on;
     * then the pid file says it is ready, before any connection is
     * accepted (the main loop has not run yet).
     */
    bd_main_loop_handle_signals();
    if (pidfile && !bd_pidfile_write(pidfile, &err)) {
        fprintf(stderr, "%s: cannot create PID file: %s\n", prog,
                err->message);
        goto out;
    }
    BD_TRACE(&bd_tp_daemon_state, "state ready pid %d", (int)getpid());
    bd_systemd_notify("READY=1");
    if (!bd_daemonize_finish(&err)) {
        fprintf(stderr, "%s: %s\n", prog, err->message);
        goto out;
    }

    bd_main_loop_run();

    BD_TRACE(&bd_tp_daemon_state, "state stopping");
    bd_systemd_notify("STOPPING=1");
    /* replies to the requests already handled still go out */
    bd_monitors_flush(1000);
    status = EXIT_SUCCESS;

out:
    tear_down();
    return status;
}
