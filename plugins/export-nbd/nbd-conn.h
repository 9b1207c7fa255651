/*
 * export-nbd: what the three parts of a client connection share.
 *
 * A connection is one coroutine that negotiates (in the main loop, where
 * the exports are listed) and then receives requests in the export's
 * AioContext.  Each request runs in a coroutine of its own, so that many
 * are in flight at once; replies are written under a BdCoMutex as the
 * requests complete, in whatever order that is.  Memory is bounded: at
 * most NBD_MAX_REQUESTS requests and NBD_MAX_QUEUED_BYTES of payload
 * buffers per connection; the receiver waits for room before it reads
 * the next request.  Everything a client sends is checked by
 * nbd-proto.c before it is acted on; a client that breaks the protocol
 * loses its own connection only.
 *
 * nbd-conn.c: the life cycle, the socket I/O and its waits;
 * nbd-negotiate.c: the handshake (NBD_OPT_*);
 * nbd-requests.c: the transmission phase (NBD_CMD_*).
 *
 * Shutdown (nbd_client_close()): requests received from then on are
 * answered NBD_ESHUTDOWN, the ones in flight complete, and when none is
 * left the socket is shut down.  A writer that would wait for a client
 * that does not read gives up instead.
 */
#ifndef NBD_CONN_H
#define NBD_CONN_H

#include <stddef.h>
#include <sys/uio.h>

#include "nbd-int.h"
#include "nbd-meta.h"
#include "nbd-tls.h"

/* QEMU's limit of requests in flight per connection. */
#define NBD_MAX_REQUESTS 16
/* Payload buffers one connection may hold at a time. */
#define NBD_MAX_QUEUED_BYTES (64u * 1024 * 1024)
/*
 * Payload buffers a connection keeps for reuse, and their total size: a
 * fresh buffer of a megabyte costs page faults on every request (or an
 * mmap/munmap pair), far more than the copy into it.
 */
#define NBD_BUF_CACHE_COUNT NBD_MAX_REQUESTS
#define NBD_BUF_CACHE_BYTES (16u * 1024 * 1024)
/* Buffer alignment: what O_DIRECT wants, so no driver has to bounce. */
#define NBD_BUF_ALIGN 4096

struct NbdClient {
    gint refcnt;
    int fd;
    BdAioContext *main_ctx;
    BdAioContext *ctx;          /* where the connection runs now */
    gint closing;               /* nbd_client_close() was called */
    bool broken;                /* a send failed: the stream is lost */
    int64_t negotiating_since;  /* bd_clock_ns() at accept; -1 after */
    bool negotiated;            /* reached the transmission phase */
    BdAioTimer *handshake_timer; /* drops a client too slow to negotiate */
    NbdTls *tls;                /* TLS is required (NULL: never offered) */
    bool tls_active;            /* after STARTTLS: all traffic is TLS */
    bool zerocopy;              /* reads may use bd_blk_co_pread_to_fd() */

    BdCoroutine *recv_waiter;   /* waits for the socket to be readable */
    BdCoroutine *send_waiter;   /* waits for it to be writable */
    BdCoroutine *slot_waiter;   /* the receiver, waiting for room */
    BdCoroutine *drain_waiter;  /* the connection, waiting for no requests */
    bool reg_read, reg_write;   /* what the fd handler watches now */

    NbdExport *exp;             /* bound by GO / EXPORT_NAME */
    bool structured;            /* structured replies (implied by extended) */
    bool extended;              /* extended headers */
    bool base_allocation;
    bool allocation_depth;
    NbdMetaBitmaps meta_bitmaps; /* qemu:dirty-bitmap contexts selected */
    char *meta_export;          /* export SET_META_CONTEXT was made for */

    BdCoMutex send_lock;
    unsigned in_flight;
    uint64_t queued_bytes;

    /* payload buffers for reuse (only the connection's thread) */
    void *buf_cache[NBD_BUF_CACHE_COUNT];
    uint64_t buf_cache_cap[NBD_BUF_CACHE_COUNT];
    unsigned buf_cached;
    uint64_t buf_cached_bytes;
};

/* --- nbd-conn.c --------------------------------------------------------------- */

/*
 * A payload buffer of at least @len bytes, aligned for O_DIRECT (its
 * size in *@cap), or NULL when memory is short.  Only in the
 * connection's thread.
 */
void *nbd_buf_get(NbdClient *c, uint64_t len, uint64_t *cap);

/* Give @buf (of @cap bytes) back for reuse, or free it. */
void nbd_buf_put(NbdClient *c, void *buf, uint64_t cap);

/* Wake the coroutine in *@waiter, if any, and clear it. */
void nbd_conn_wake(NbdClient *c, BdCoroutine **waiter);

/* nbd_client_close() was called. */
bool nbd_conn_is_closing(NbdClient *c);

/* coroutine_fn: wait until the socket is readable (or writable). */
int nbd_conn_wait_socket(NbdClient *c, bool write);

/* coroutine_fn: read exactly @len bytes; -EPIPE at end of stream. */
int nbd_co_recv(NbdClient *c, void *buf, size_t len);

/* coroutine_fn: read and throw away @len bytes (a refused payload). */
int nbd_co_skip(NbdClient *c, uint64_t len);

/* coroutine_fn: write all of @iov (modified) / of @buf. */
int nbd_co_sendv(NbdClient *c, struct iovec *iov, int cnt);
int nbd_co_send(NbdClient *c, const void *buf, size_t len);

/* --- nbd-negotiate.c ------------------------------------------------------------ */

/*
 * coroutine_fn: the handshake.  Returns 0 when the client entered the
 * transmission phase on c->exp, negative to hang up.
 */
int nbd_negotiate(NbdClient *c);

/* --- nbd-requests.c ------------------------------------------------------------- */

/* coroutine_fn: read requests until the client goes or breaks the rules. */
void nbd_receive_loop(NbdClient *c);

#endif /* NBD_CONN_H */
