/*
 * blockd plugin ABI: the "tls-creds" object interface.
 *
 * TLS credentials objects (tls-creds-x509, tls-creds-psk, tls-creds-anon)
 * hold what a TLS endpoint needs (certificates, keys, pre-shared keys,
 * Diffie-Hellman parameters) and make TLS sessions over sockets that other
 * plugins own, so that no other plugin needs a TLS library of its own.  A
 * type offers this as the BdObjectInterface named BD_TLS_INTERFACE whose
 * @ops point to a BdTlsInterface, and names "tls-creds" as its parent type
 * so that bd_object_find(id, "tls-creds") finds its objects.
 *
 * A user first takes a reference to the credentials (get_creds()): it
 * outlives the object, as in QEMU, where object-del of credentials in use
 * succeeds and the sessions and servers that hold them carry on.  Then it
 * makes sessions from them, one per connection:
 *
 *     ops = bd_object_get_interface(obj, BD_TLS_INTERFACE);
 *     creds = ops->get_creds(obj);
 *     ...
 *     s = ops->session_new(creds, fd, NULL, authz_id, &err);
 *     while ((r = ops->handshake(s, &err)) == -EAGAIN) {
 *         wait for ops->wants_write(s) ? POLLOUT : POLLIN on fd;
 *     }
 *     ... ops->read(s, ...) / ops->writev(s, ...) ...
 *     ops->session_free(s);
 *     ops->creds_unref(creds);
 *
 * The socket stays the caller's: the session reads and writes it with
 * recv()/send() and never blocks, closes or waits on it.  One session is
 * used by one thread at a time (it may move between threads), and a read
 * may be in progress while a writev() waits to be retried, so a receiving
 * coroutine and a replying one can share a session.
 */
#ifndef BLOCKD_TLS_H
#define BLOCKD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <glib.h>

#include <blockd/object.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BD_TLS_INTERFACE "tls-creds"

/* A counted reference to one object's loaded credentials. */
typedef struct BdTlsCreds BdTlsCreds;

/* One TLS connection over a caller's socket. */
typedef struct BdTlsSession BdTlsSession;

/* QAPI's QCryptoTLSCredsEndpoint. */
typedef enum BdTlsEndpoint {
    BD_TLS_ENDPOINT_CLIENT = 0,
    BD_TLS_ENDPOINT_SERVER = 1,
} BdTlsEndpoint;

/*
 * BdTlsInterface (since ABI 1.0):
 * @struct_size: sizeof(BdTlsInterface) as the provider was built; a caller
 *        reads a field only when it lies within this size.
 *
 * Credentials (main thread):
 * @get_creds: a new reference to @obj's credentials.  Never NULL: an
 *        object exists only once its credentials are loaded.
 * @creds_unref: drop a reference from get_creds(); the last one frees
 *        the credentials.  Any thread.
 * @creds_get_endpoint: whether the credentials are for a client or a
 *        server ('endpoint' of the object).  Any thread.
 *
 * Sessions (one thread at a time, see above):
 * @session_new: a session of @creds' endpoint over the connected,
 *        non-blocking stream socket @fd (borrowed: it must stay open until
 *        session_free()).  @hostname (client only, may be NULL) is the
 *        name the server's certificate must match when peers are
 *        verified; @authz_id (server only, may be NULL) is the id of an
 *        "authz" object (see <blockd/authz.h>) asked whether the client's
 *        x509 distinguished name may connect once the handshake is done.
 *        Both are copied.  NULL with @errp set on failure.
 * @handshake: drive the handshake as far as the socket allows.  Returns 0
 *        when it is complete and the peer's credentials have passed the
 *        checks (verification when 'verify-peer' is on, the hostname, the
 *        authz object), -EAGAIN when it must be called again once the
 *        socket is ready (see @wants_write), or -1 with @errp set when it
 *        failed; the session is then only good for session_free().  With
 *        an authz id it must be called in the main thread (authz objects
 *        answer there).
 * @read: read up to @len bytes of application data into @buf.  Returns
 *        the count (> 0), 0 at the peer's end of stream, -EAGAIN when
 *        nothing can be read before the socket is ready (see
 *        @wants_write), or -1 with @errp set on failure.
 * @writev: send the bytes of @iov (@iovcnt buffers), or the first part of
 *        them.  Returns how many bytes of @iov were taken (> 0; the caller
 *        advances by that much and calls again for the rest), -EAGAIN
 *        when the socket must become ready first, or -1 with @errp set on
 *        failure.  After -EAGAIN the next writev() must pass the same
 *        bytes again (they may already be encrypted and half sent).
 *        Small buffers are gathered into one TLS record.
 * @wants_write: after -EAGAIN from handshake(), read() or writev(),
 *        whether the session waits for the socket to become writable
 *        (true) or readable (false).
 * @pending: how many bytes of application data the session holds already
 *        decrypted, which read() returns without the socket becoming
 *        readable: a caller that polls the socket must read these first.
 * @get_peer_name: the peer's x509 distinguished name (RFC 4514 as gnutls
 *        prints it, e.g. "C=GB,O=Example,CN=client1") once the handshake
 *        has checked it, as a new string; NULL when the peer gave no
 *        certificate or 'verify-peer' was off.
 * @session_free: end the session (NULL is allowed).  It does not send a
 *        TLS close alert, which could block: the caller shuts the socket
 *        down.
 */
typedef struct BdTlsInterface {
    uint32_t struct_size;
    BdTlsCreds *(*get_creds)(BdObject *obj);
    void (*creds_unref)(BdTlsCreds *creds);
    BdTlsEndpoint (*creds_get_endpoint)(BdTlsCreds *creds);
    BdTlsSession *(*session_new)(BdTlsCreds *creds, int fd,
                                 const char *hostname, const char *authz_id,
                                 GError **errp);
    int (*handshake)(BdTlsSession *s, GError **errp);
    ssize_t (*read)(BdTlsSession *s, void *buf, size_t len, GError **errp);
    ssize_t (*writev)(BdTlsSession *s, const struct iovec *iov, int iovcnt,
                      GError **errp);
    bool (*wants_write)(BdTlsSession *s);
    size_t (*pending)(BdTlsSession *s);
    char *(*get_peer_name)(BdTlsSession *s);
    void (*session_free)(BdTlsSession *s);
} BdTlsInterface;

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_TLS_H */
