/*
 * export-nbd: TLS for NBD connections, through a tls-creds object's
 * <blockd/tls.h> interface (this plugin never links a TLS library).
 */
#ifndef NBD_TLS_H
#define NBD_TLS_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <blockd/blockd.h>

/* The server's TLS settings: its credentials and authz object id. */
typedef struct NbdTlsConfig NbdTlsConfig;

/* One connection's TLS: the settings, then the session after STARTTLS. */
typedef struct NbdTls NbdTls;

/*
 * The settings for nbd-server-start's @creds_id and @authz_id (may be
 * NULL), refused with QEMU's messages when @creds_id does not name
 * server-endpoint TLS credentials.  Main loop.
 */
NbdTlsConfig *nbd_tls_config_new(const char *creds_id, const char *authz_id,
                                 GError **errp);

/* Free @cfg; connections made from it keep what they need. */
void nbd_tls_config_free(NbdTlsConfig *cfg);

/* TLS for the accepted socket @fd (borrowed), required by @cfg. */
NbdTls *nbd_tls_new(NbdTlsConfig *cfg, int fd);

/* Free @t and its session (NULL is allowed). */
void nbd_tls_free(NbdTls *t);

/*
 * Start the server side of the handshake (after the reply to STARTTLS).
 * False with @errp set when no session can be made.
 */
bool nbd_tls_start(NbdTls *t, GError **errp);

/*
 * Drive the handshake: 0 when it is done and the client is accepted
 * (credentials and authz checked), -EAGAIN to call again once the socket
 * is ready (nbd_tls_wants_write() says for what), -1 with @errp set when
 * the client is refused.  Main loop (authz objects answer there).
 */
int nbd_tls_handshake(NbdTls *t, GError **errp);

/* After -EAGAIN: whether the session waits to write (else to read). */
bool nbd_tls_wants_write(NbdTls *t);

/*
 * recv() and sendmsg() over the session, with their conventions: a
 * count, 0 at end of stream (recv), or -1 with errno set (EAGAIN when
 * the socket is not ready; EIO when TLS fails).  nbd_tls_sendv() takes
 * a prefix of @iov; after EAGAIN it must be given the same @iov again.
 */
ssize_t nbd_tls_recv(NbdTls *t, void *buf, size_t len);
ssize_t nbd_tls_sendv(NbdTls *t, const struct iovec *iov, int cnt);

#endif /* NBD_TLS_H */
