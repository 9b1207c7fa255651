/*
 * object-tls-creds: what the credentials objects and the sessions share.
 */
#ifndef TLS_CREDS_INT_H
#define TLS_CREDS_INT_H

#include <stdbool.h>

#include <gnutls/gnutls.h>

#include <blockd/blockd.h>
#include <blockd/tls.h>

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
    /*
     * verify-peer and priority change with qom-set while sessions run in
     * other threads: read with g_atomic_*; a replaced priority string is
     * kept in @old_priorities until the credentials go, so a session
     * that just read it never sees it freed.
     */
    gint verify_peer;
    char *priority;                 /* NULL: the default */
    GPtrArray *old_priorities;
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

/* File names inside 'dir', as QEMU reads them. */
#define FILE_CA_CERT "ca-cert.pem"
#define FILE_CA_CRL "ca-crl.pem"
#define FILE_SERVER_CERT "server-cert.pem"
#define FILE_SERVER_KEY "server-key.pem"
#define FILE_CLIENT_CERT "client-cert.pem"
#define FILE_CLIENT_KEY "client-key.pem"
#define FILE_DH_PARAMS "dh-params.pem"
#define FILE_PSK "keys.psk"


/* What object-add was given, kept from create() to complete(). */
typedef struct TlsCredsObject {
    TlsCredsKind kind;
    BdTlsEndpoint endpoint;
    bool verify_peer;
    bool sanity_check;
    char *dir;
    char *priority;
    char *username;
    char *passwordid;
    BdTlsCreds *creds;          /* loaded by complete() */
} TlsCredsObject;

void tls_creds_unref(BdTlsCreds *creds);

/* tls-creds.c: files of 'dir'. */
/*
 * The path of @name in @t's dir in *@path, or NULL when it does not exist
 * and is not @required.  False with @errp set when it cannot be used.
 */
bool tls_get_path(TlsCredsObject *t, const char *name, bool required,
                  char **path, GError **errp);
/* Load dh-params.pem (@file) into creds->dh_params; NULL: leave it unset. */
bool tls_load_dh_params(BdTlsCreds *creds, const char *file, GError **errp);

/* Load @t's files into @creds, one per kind (tls-creds-KIND.c). */
bool tls_load_x509(TlsCredsObject *t, BdTlsCreds *creds, GError **errp);
bool tls_load_psk(TlsCredsObject *t, BdTlsCreds *creds, GError **errp);
bool tls_load_anon(TlsCredsObject *t, BdTlsCreds *creds, GError **errp);

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
