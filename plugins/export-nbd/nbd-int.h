/*
 * export-nbd: what the server, its exports and its connections share.
 *
 * Threads: the server (listening sockets, the lists of exports and
 * clients) lives in the main loop.  A connection negotiates in the main
 * loop, then moves to its export's AioContext for the transmission phase
 * (for an export with several iothreads, one of them, in turn); from
 * then on only the connection's own coroutines touch its state, and it
 * goes back to the main loop (by a bottom half) to be unlinked.  The
 * connections of one export may so run in different threads at once:
 * they share only the export (read-only after creation) and its
 * BlockBackend, which takes requests from any thread.
 */
#ifndef NBD_INT_H
#define NBD_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <blockd/blockd.h>

#include "nbd-tls.h"

/* One 'nbd' export: the instance data of a BdExport. */
typedef struct NbdExport {
    BdExport *exp;
    char *name;
    char *description;          /* NULL when not given */
    uint64_t size;              /* advertised size */
    uint16_t flags;             /* transmission flags, before SEND_DF */
    bool allocation_depth;      /* offers qemu:allocation-depth */
    BdDirtyBitmap **bitmaps;    /* offered as qemu:dirty-bitmap:NAME, */
    unsigned nr_bitmaps;        /* held busy and referenced */
    unsigned next_ctx;          /* round-robin over multi-thread contexts */
} NbdExport;

typedef struct NbdClient NbdClient;

/* --- server (nbd-server.c), main loop ------------------------------------ */

/* True between nbd-server-start and nbd-server-stop. */
bool nbd_server_is_running(void);

/* max-connections of the running server (0: unlimited). */
uint32_t nbd_server_max_connections(void);

/* The live export named @name (not shutting down), or NULL. */
NbdExport *nbd_export_lookup(const char *name);

/* Every live export, in creation order (borrowed list). */
GList *nbd_export_list(void);

/*
 * The AioContext a connection to @e that finished its negotiation is
 * served in: the export's context, or the next of its iothreads in turn.
 */
BdAioContext *nbd_export_next_context(NbdExport *e);

/* Register / unregister an export with the server. */
void nbd_server_add_export(NbdExport *e);
void nbd_server_remove_export(NbdExport *e);

/* A connection has ended: unlink it and accept again if at the limit. */
void nbd_server_client_gone(NbdClient *c);

/* Disconnect every client bound to @e. */
void nbd_server_close_clients(NbdExport *e);

/* The QMP commands. */
bool nbd_qmp_server_start(JsonObject *args, JsonNode **ret, GError **errp);
bool nbd_qmp_server_stop(JsonObject *args, JsonNode **ret, GError **errp);
bool nbd_qmp_server_add(JsonObject *args, JsonNode **ret, GError **errp);
bool nbd_qmp_server_remove(JsonObject *args, JsonNode **ret, GError **errp);

/* --- connections (nbd-conn.c) ------------------------------------------------ */

/*
 * Start serving the accepted socket @fd (non-blocking) in the main loop.
 * Takes ownership of @fd.  @tls: the server's TLS settings, which the
 * client then requires (NULL: no TLS).  A client that has not finished
 * its handshake (TLS included) @handshake_max_seconds after this is
 * dropped (0: never).
 */
NbdClient *nbd_client_new(int fd, NbdTlsConfig *tls,
                          uint32_t handshake_max_seconds);

/*
 * When @c was accepted (bd_clock_ns()) if it is still negotiating, else
 * -1 (in the transmission phase, or on its way out).
 */
int64_t nbd_client_negotiating_since(NbdClient *c);

/* Whether @c finished its negotiation (reached the transmission phase). */
bool nbd_client_negotiated(NbdClient *c);

/*
 * Hang up on @c, which is still negotiating (main loop): its socket is
 * shut down and the connection ends as soon as it runs, as when its
 * handshake deadline passes.
 */
void nbd_client_drop(NbdClient *c);

/* Disconnect @c: pending requests fail, the socket is shut down. */
void nbd_client_close(NbdClient *c);

/* The export @c is bound to (after NBD_OPT_GO/EXPORT_NAME), or NULL. */
NbdExport *nbd_client_get_export(NbdClient *c);

/* Free @c (main loop, after nbd_server_client_gone()). */
void nbd_client_unref(NbdClient *c);

/* --- metadata contexts (nbd-meta.c) -------------------------------------- */

/*
 * coroutine_fn, in the export's context: the payload of one block status
 * chunk for the context @context_id (NBD_META_ID_*; for a
 * qemu:dirty-bitmap context, @bm is its bitmap, else NULL) over @len
 * bytes from @offset, into @out (replaced): the id, then with @extended
 * the extent count and 64-bit extents, else 32-bit extents.  @req_one: a
 * single extent (NBD_CMD_FLAG_REQ_ONE).  The extents may cover less than
 * @len (at most 1 MiB of them).  Returns 0 or a negative errno.
 */
int nbd_meta_block_status(BdBlockBackend *blk, uint32_t context_id,
                          BdDirtyBitmap *bm, uint64_t offset, uint64_t len,
                          bool req_one, bool extended, GByteArray *out);

#endif /* NBD_INT_H */
