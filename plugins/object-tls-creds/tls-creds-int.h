/*
 * object-tls-creds: what the credentials objects and the sessions share.
 */
#ifndef TLS_CREDS_INT_H
#define TLS_CREDS_INT_H

#include <stdbool.h>

#include <gnutls/gnutls.h>

#include <blockd/blockd.h>
#include <blockd/tls.h>

/* Every failure here is a GenericError with QEMU's message. */
#define tls_set_err(errp, ...) \
    g_set_error((errp), BD_ERROR, BD_ERROR_GENERIC, __VA_ARGS__)

typedef enum TlsCredsKind {
    TLS_CREDS_ANON,
    TLS_CREDS_PSK,
    TLS_CREDS_X509,
} TlsCredsKind;

/*
 * Loaded credentials: immutable once loaded, shared by the object and
 * every session and user that took a reference.
 */
struct BdTlsCreds {
    gint refcnt;
    TlsCredsKind kind;
    BdTlsEndpoint endpoint;
    bool verify_peer;
    char *priority;                 /* NULL: the default */
    gnutls_dh_params_t dh_params;   /* from dh-params.pem, or NULL */
    union {
        gnutls_anon_server_credentials_t anon_server;
        gnutls_anon_client_credentials_t anon_client;
        gnutls_psk_server_credentials_t psk_server;
        gnutls_psk_client_credentials_t psk_client;
        gnutls_certificate_credentials_t x509;
    } u;
};

/* The priority string used when the object sets none (QEMU's default). */
#define TLS_DEFAULT_PRIORITY "NORMAL"

void tls_creds_unref(BdTlsCreds *creds);

/* tls-session.c: the session half of the interface. */
BdTlsSession *tls_session_new(BdTlsCreds *creds, int fd,
                              const char *hostname, const char *authz_id,
                              GError **errp);
int tls_session_handshake(BdTlsSession *s, GError **errp);
ssize_t tls_session_read(BdTlsSession *s, void *buf, size_t len,
                         GError **errp);
ssize_t tls_session_writev(BdTlsSession *s, const struct iovec *iov,
                           int iovcnt, GError **errp);
bool tls_session_wants_write(BdTlsSession *s);
size_t tls_session_pending(BdTlsSession *s);
char *tls_session_get_peer_name(BdTlsSession *s);
void tls_session_free(BdTlsSession *s);

#endif /* TLS_CREDS_INT_H */
