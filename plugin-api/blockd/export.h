/*
 * blockd plugin ABI: export types and the exports made from them
 * (block-export-add, block-export-del, --export).
 *
 * The core owns every export.  For block-export-add it checks the options
 * against BlockExportOptions (the plugin's schema fragment adds the type
 * to BlockExportType and its branch to the union), refuses a malformed or
 * duplicate id and an unknown node, moves to the 'iothread' when given,
 * opens a BlockBackend on the node (taking "consistent read", plus
 * "write" when 'writable'; sharing everything, as QEMU does), and only
 * then calls the type's create().
 *
 * Lifetime: an export is reference counted.  The core holds one reference
 * for the user ("user owned") from create() until the export is asked to
 * shut down (block-export-del, bd_export_request_shutdown(), daemon
 * exit).  A plugin holds one more reference (bd_export_ref()) for every
 * connected client (and, if it likes, every request in flight) and drops
 * it (bd_export_unref()) when the client goes.  Hence:
 *   - block-export-del mode 'safe' refuses ("export 'ID' still in use")
 *     while the plugin holds any reference;
 *   - mode 'hard' and daemon exit call request_shutdown(), whose job is
 *     to disconnect the clients, which in turn drop their references;
 *   - when the last reference is dropped after the shutdown request, the
 *     core (from a bottom half in the main loop) calls the type's
 *     destroy(), frees the BlockBackend, emits BLOCK_EXPORT_DELETED and
 *     the id becomes reusable.
 *
 * All callbacks run in the main thread unless said otherwise.
 */
#ifndef BLOCKD_EXPORT_H
#define BLOCKD_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/block-backend.h>
#include <blockd/coroutine.h>
#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One export made with block-export-add or --export; owned by the core. */
typedef struct BdExport BdExport;

/*
 * BdExportType (since ABI 1.0):
 * @struct_size: sizeof(BdExportType).
 * @name: the value of BlockExportOptions' 'type', e.g. "nbd".
 * @description: one line for listings and help.
 *
 * Appended fields; each reads as zero/NULL in a provider that does not set
 * it:
 * @instance_size: bytes of zeroed instance data the core allocates for
 *        each export before create() and frees after destroy(); reach it
 *        with bd_export_get_opaque().  0: none.
 * @create: set the export up from @options, the whole validated
 *        BlockExportOptions object (common members such as 'id',
 *        'node-name', 'writable' and the members of the type's branch;
 *        optional members are absent when not given; borrowed for the
 *        call).  The BlockBackend is open and usable from here on.
 *        Returns false with @errp set to refuse the export: then neither
 *        request_shutdown() nor destroy() is called, so free what was
 *        set up before returning, and hold no reference.  Required: a
 *        type without create() cannot make exports.
 * @request_shutdown: begin closing the export: stop accepting clients,
 *        disconnect the connected ones (each disconnection eventually
 *        drops its reference).  Called at most once, only after a
 *        successful create().  Must not free the export.  NULL: nothing
 *        to do (the type holds no references).
 * @destroy: free what the export holds (not the instance data, which the
 *        core frees afterwards).  Called once the last reference is gone,
 *        after request_shutdown(); the BlockBackend is still attached
 *        during the call.  NULL: nothing to do.
 * @supports_multithread: the type can serve one export from several
 *        iothreads at once ('iothread' given as a list): its create()
 *        then finds their contexts with
 *        bd_export_get_multithread_contexts() and may issue requests on
 *        the BlockBackend from any of them.  false: the core refuses such
 *        exports.
 */
struct BdExportType {
    uint32_t struct_size;
    const char *name;
    const char *description;
    size_t instance_size;
    bool (*create)(BdExport *exp, JsonObject *options, GError **errp);
    void (*request_shutdown)(BdExport *exp);
    void (*destroy)(BdExport *exp);
    bool supports_multithread;
};

/* --- accessors: any thread, valid while the caller holds a reference ------ */

/* The export's id ('id').  Never NULL; owned by @exp. */
const char *bd_export_get_id(BdExport *exp);

/* The export's type name ('type').  Never NULL. */
const char *bd_export_get_type_name(BdExport *exp);

/* The name of the exported node ('node-name').  Never NULL. */
const char *bd_export_get_node_name(BdExport *exp);

/*
 * The BlockBackend to do the export's I/O with.  Never NULL while the
 * export exists (including during destroy()).
 */
BdBlockBackend *bd_export_get_blk(BdExport *exp);

/* Whether clients may write ('writable', default false). */
bool bd_export_is_writable(BdExport *exp);

/*
 * Whether the export is write-through ('writethrough', default false):
 * the backend then makes every write FUA by itself; a plugin uses this
 * only to tell its clients (e.g. not to advertise a volatile cache).
 */
bool bd_export_is_writethrough(BdExport *exp);

/*
 * The AioContext the export runs in: the 'iothread' object's context when
 * the node could be moved there, else the node's.  Client I/O coroutines
 * and fd handlers belong in this context.
 */
BdAioContext *bd_export_get_aio_context(BdExport *exp);

/*
 * The contexts of the iothreads a multi-threaded export runs in
 * ('iothread' given as a list, in the list's order, at least one): the
 * count, with *@ctxs pointing to the array, which the export owns.  0 and
 * NULL for an export run in one context (bd_export_get_aio_context()).
 * The node stays in its own context; requests may come from any of these
 * threads.
 */
size_t bd_export_get_multithread_contexts(BdExport *exp,
                                          BdAioContext *const **ctxs);

/*
 * The export's opaque pointer: the instance data (@instance_size) until
 * the plugin sets another with bd_export_set_opaque(), NULL when there is
 * neither.  The core never frees what is set here.
 */
void *bd_export_get_opaque(BdExport *exp);
void bd_export_set_opaque(BdExport *exp, void *opaque);

/*
 * True once the export was asked to shut down (request_shutdown() has
 * been called or is being called): accept no new clients.
 */
bool bd_export_is_shutting_down(BdExport *exp);

/* --- references and life cycle: main thread -------------------------------- */

/*
 * Take a reference, e.g. for a client that connects.  The caller must
 * already own one or be inside a callback of the type.  Main thread.
 */
void bd_export_ref(BdExport *exp);

/*
 * Drop a reference.  When the last one goes the export is deleted from a
 * bottom half in the main loop (never inside this call): destroy(),
 * BlockBackend freed, BLOCK_EXPORT_DELETED emitted.  Main thread.
 */
void bd_export_unref(BdExport *exp);

/*
 * The export with @id, or NULL.  The result stays valid while the caller
 * is in the main thread and does not return to the main loop; take a
 * reference to keep it longer.  Main thread.
 */
BdExport *bd_export_find(const char *id);

/*
 * Create an export from @options, a BlockExportOptions object, exactly as
 * block-export-add does (schema check, then the checks in the order QEMU
 * makes them, then the type's create()); for a plugin command like
 * nbd-server-add.  Returns the new export, which the core owns, or NULL
 * with @errp set.  Main thread.
 */
BdExport *bd_export_add(JsonObject *options, GError **errp);

/*
 * Ask the export to shut down and drop the user's reference, as
 * block-export-del with @hard (mode 'hard') or without (mode 'safe',
 * refused with "export 'ID' still in use" while the type holds a
 * reference).  Fails with "Export 'ID' is not found" or "Export 'ID' is
 * already shutting down".  The export is deleted later, when the last
 * reference goes.  Main thread.
 */
bool bd_export_del(const char *id, bool hard, GError **errp);

/*
 * Ask every export of type @type_name (all exports when NULL) to shut
 * down, then run the main loop until they are all deleted; for commands
 * like nbd-server-stop.  Main thread, not from a coroutine.
 */
void bd_export_close_all(const char *type_name);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_EXPORT_H */
