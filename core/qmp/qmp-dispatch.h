/*
 * The QMP dispatcher: the table of commands and the checks QEMU makes on
 * a request before and after running its handler.
 *
 * Commands come from two places: the core registers its own with
 * bd_qmp_register_command(); commands a plugin provides are found through
 * the plugin loader (bd_plugins_lookup(BD_PROVIDE_QMP_COMMAND, ...)) the
 * first time a client calls them.  Arguments are validated by the checker
 * the daemon installs (bd_qmp_set_argument_checker(), normally the schema
 * engine's bd_schema_check_command_args); until one is installed they are
 * passed to handlers as the client sent them, so core handlers check the
 * types they read.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_QMP_DISPATCH_H
#define BLOCKD_CORE_QMP_DISPATCH_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/error.h>
#include <blockd/qmp.h>

/* Flags of core commands (BD_QMP_ALLOW_OOB from <blockd/qmp.h> too). */
/* The command may run before capabilities negotiation (qmp_capabilities). */
#define BD_QMP_BEFORE_NEGOTIATION (1u << 16)

/*
 * The QMP state of one client connection.  The monitor owns it; handlers
 * reach the caller's through bd_qmp_current_session().
 */
typedef struct BdQmpSession {
    bool negotiated;        /* qmp_capabilities succeeded */
    bool oob_offered;       /* the greeting listed "oob" */
    bool oob_enabled;       /* the client enabled "oob" */
    bool internal;          /* the daemon's own requests (--nbd-server),
                               not a monitor client's */
} BdQmpSession;

/*
 * bd_schema_check_command_args-like validation: check @args of @command
 * and set *@out to a new object with the validated (and defaulted)
 * arguments; or return false with @errp set (GenericError and QEMU's
 * message, or CommandNotFound).
 */
typedef bool (*BdQmpArgumentChecker)(const char *command, JsonObject *args,
                                     JsonObject **out, GError **errp);

/*
 * Register a core command.  @flags: BD_QMP_ALLOW_OOB,
 * BD_QMP_BEFORE_NEGOTIATION.  Registering a name again replaces the
 * earlier entry (tests re-register).  @name is copied.
 */
void bd_qmp_register_command(const char *name, BdQmpHandler handler,
                             unsigned flags);

/* Remove a core command; no-op if absent. */
void bd_qmp_unregister_command(const char *name);

/*
 * The handler of the core command @name, or NULL: for a command that
 * runs others' steps (transaction runs the dirty bitmap commands).
 */
BdQmpHandler bd_qmp_find_core_handler(const char *name);

/* Install (or with NULL, remove) the argument checker. */
void bd_qmp_set_argument_checker(BdQmpArgumentChecker checker);

/*
 * Every command name the dispatcher can run: core commands (newest
 * registration first, as qemu-storage-daemon lists them) then those
 * plugins provide (without loading the plugins).  Free with
 * g_ptr_array_unref; the strings are owned by the array.
 */
GPtrArray *bd_qmp_command_names(void);

/*
 * Run one request from a client of @session.  @request is what the JSON
 * stream produced (any JSON value); @parse_error, if not NULL, is the
 * stream's error instead of a request.  Returns the response object to
 * send ({"return": ...} or {"error": ...}, with "id" echoed), or NULL
 * when nothing is to be sent.  Does not take ownership of the inputs.
 */
JsonObject *bd_qmp_dispatch(BdQmpSession *session, JsonNode *request,
                            const GError *parse_error);

/*
 * The session of the request being dispatched, or NULL outside a
 * dispatch (e.g. commands run by tests directly).
 */
BdQmpSession *bd_qmp_current_session(void);

/* {"error": {"class": ..., "desc": ...}} for @err (BD_ERROR codes). */
JsonObject *bd_qmp_error_response(const GError *err);

/* Drop every registration and the checker (tests). */
void bd_qmp_dispatch_reset(void);

#endif /* BLOCKD_CORE_QMP_DISPATCH_H */
