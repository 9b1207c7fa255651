/*
 * object-tls-creds: TLS sessions over sockets other plugins own (the
 * session half of <blockd/tls.h>).
 *
 * gnutls reads and writes the socket itself (non-blocking, MSG_NOSIGNAL);
 * the caller waits for readiness.  The peer's credentials are checked as
 * QEMU's qcrypto_tls_session_check_credentials() does, with its messages,
 * as soon as the handshake is done.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <gnutls/x509.h>

#include "tls-creds-int.h"

/* The largest plaintext of one TLS record. */
#define TLS_RECORD_MAX 16384

/* QEMU's additions to the priority string for anon and PSK credentials. */
#define PRIORITY_EXTRA_ANON "+ANON-DH"
#define PRIORITY_EXTRA_PSK "+ECDHE-PSK:+DHE-PSK:+PSK"

struct BdTlsSession {
    BdTlsCreds *creds;
    gnutls_session_t handle;
    char *hostname;
    char *authz_id;
    char *peer_name;
    bool handshake_done;
    /* writev()'s gathered record, and its length while a send waits */
    uint8_t *wbuf;
    size_t wbuf_pending;
};

void tls_session_free(BdTlsSession *s)
{
    if (!s) {
        return;
    }
    if (s->handle) {
        gnutls_deinit(s->handle);
    }
    tls_creds_unref(s->creds);
    g_free(s->hostname);
    g_free(s->authz_id);
    g_free(s->peer_name);
    g_free(s->wbuf);
    g_free(s);
}

/* Apply @creds' priority string plus @extra (may be NULL). */
static bool set_priority(BdTlsSession *s, const char *extra, GError **errp)
{
    const char *cur = g_atomic_pointer_get(&s->creds->priority);
    const char *base = cur ? cur : TLS_DEFAULT_PRIORITY;
    g_autofree char *prio = extra ? g_strdup_printf("%s:%s", base, extra)
                                  : g_strdup(base);
    int ret = gnutls_priority_set_direct(s->handle, prio, NULL);

    if (ret < 0) {
        bd_error_setg(errp, extra ? "Unable to set TLS session priority %s: %s"
                            : "Cannot set default TLS session priority "
                              "%s: %s", prio, gnutls_strerror(ret));
        return false;
    }
    return true;
}

BdTlsSession *tls_session_new(BdTlsCreds *creds, int fd,
                              const char *hostname, const char *authz_id,
                              GError **errp)
{
    BdTlsSession *s = g_new0(BdTlsSession, 1);
    bool server = creds->endpoint == BD_TLS_ENDPOINT_SERVER;
    int ret;

    g_atomic_int_inc(&creds->refcnt);
    s->creds = creds;
    s->hostname = g_strdup(hostname);
    s->authz_id = g_strdup(authz_id);
    ret = gnutls_init(&s->handle, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                      GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (ret < 0) {
        s->handle = NULL;
        bd_error_setg(errp, "Cannot initialize TLS session: %s",
                      gnutls_strerror(ret));
        goto fail;
    }
    switch (creds->kind) {
    case TLS_CREDS_ANON:
        if (!set_priority(s, PRIORITY_EXTRA_ANON, errp)) {
            goto fail;
        }
        ret = gnutls_credentials_set(s->handle, GNUTLS_CRD_ANON,
                                     server ? (void *)creds->u.anon_server
                                            : (void *)creds->u.anon_client);
        break;
    case TLS_CREDS_PSK:
        if (!set_priority(s, PRIORITY_EXTRA_PSK, errp)) {
            goto fail;
        }
        ret = gnutls_credentials_set(s->handle, GNUTLS_CRD_PSK,
                                     server ? (void *)creds->u.psk_server
                                            : (void *)creds->u.psk_client);
        break;
    default:
        if (!set_priority(s, NULL, errp)) {
            goto fail;
        }
        ret = gnutls_credentials_set(s->handle, GNUTLS_CRD_CERTIFICATE,
                                     creds->u.x509);
        if (server) {
            /* ask for a client certificate; the check below enforces it */
            gnutls_certificate_server_set_request(s->handle,
                                                  GNUTLS_CERT_REQUEST);
        }
        break;
    }
    if (ret < 0) {
        bd_error_setg(errp, "Cannot set session credentials: %s",
                      gnutls_strerror(ret));
        goto fail;
    }
    gnutls_transport_set_int(s->handle, fd);
    return s;

fail:
    tls_session_free(s);
    return NULL;
}

/* The x509 checks of the peer's certificate chain, then authz. */
static bool check_certificate(BdTlsSession *s, GError **errp)
{
    const gnutls_datum_t *certs;
    unsigned int status, ncerts;
    time_t now = time(NULL);
    int ret;

    ret = gnutls_certificate_verify_peers2(s->handle, &status);
    if (ret < 0) {
        bd_error_setg(errp, "Verify failed: %s", gnutls_strerror(ret));
        return false;
    }
    if (status) {
        const char *reason = "Invalid certificate";

        /* the last that applies wins, as in QEMU */
        if (status & GNUTLS_CERT_INVALID) {
            reason = "The certificate is not trusted";
        }
        if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
            reason = "The certificate hasn't got a known issuer";
        }
        if (status & GNUTLS_CERT_REVOKED) {
            reason = "The certificate has been revoked";
        }
        if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
            reason = "The certificate uses an insecure algorithm";
        }
        bd_error_setg(errp, "%s", reason);
        return false;
    }
    certs = gnutls_certificate_get_peers(s->handle, &ncerts);
    if (!certs) {
        bd_error_setg(errp, "No certificate peers");
        return false;
    }
    for (unsigned i = 0; i < ncerts; i++) {
        gnutls_x509_crt_t cert;
        bool ok = false;

        ret = gnutls_x509_crt_init(&cert);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot initialize certificate: %s",
                          gnutls_strerror(ret));
            return false;
        }
        ret = gnutls_x509_crt_import(cert, &certs[i], GNUTLS_X509_FMT_DER);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot import certificate: %s",
                          gnutls_strerror(ret));
        } else if (gnutls_x509_crt_get_expiration_time(cert) < now) {
            bd_error_setg(errp, "The certificate has expired");
        } else if (gnutls_x509_crt_get_activation_time(cert) > now) {
            bd_error_setg(errp, "The certificate is not yet activated");
        } else if (i > 0) {
            ok = true;
        } else {
            /*
             * The peer's own certificate: its name (as QEMU gets it, so
             * that authz rules written for QEMU match)
             * and who may use it.
             */
            size_t size = 0;

            ret = gnutls_x509_crt_get_dn(cert, NULL, &size);
            if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER) {
                g_free(s->peer_name);
                s->peer_name = g_malloc0(size + 1);
                ret = gnutls_x509_crt_get_dn(cert, s->peer_name, &size);
            }
            if (ret < 0) {
                bd_error_setg(errp, "Cannot get client distinguished name: %s",
                              gnutls_strerror(ret));
                g_clear_pointer(&s->peer_name, g_free);
            } else {
                if (!s->peer_name) {
                    s->peer_name = g_strdup("");
                }
                ok = true;
            }
            if (ok && s->authz_id) {
                BdObject *obj = bd_object_find(s->authz_id, "authz");
                const BdAuthzInterface *az = obj ?
                    bd_object_get_interface(obj, BD_AUTHZ_INTERFACE) : NULL;
                GError *err = NULL;

                ok = false;
                if (!obj && !bd_object_find(s->authz_id, NULL)) {
                    bd_error_setg(errp, "Cannot find QAuthZ object ID %s",
                                  s->authz_id);
                } else if (!az || az->struct_size <
                           G_STRUCT_OFFSET(BdAuthzInterface, is_allowed) +
                           sizeof(az->is_allowed) || !az->is_allowed) {
                    bd_error_setg(errp, "Object '%s' is not a QAuthZ subclass",
                                  s->authz_id);
                } else if (az->is_allowed(obj, s->peer_name, &err)) {
                    ok = true;
                } else if (err) {
                    g_propagate_error(errp, err);
                } else {
                    bd_error_setg(errp,
                                  "TLS x509 authz check for %s is denied",
                                  s->peer_name);
                }
            }
            if (ok && s->hostname &&
                !gnutls_x509_crt_check_hostname(cert, s->hostname)) {
                bd_error_setg(errp,
                              "Certificate does not match the hostname %s",
                              s->hostname);
                ok = false;
            } else if (ok && !s->hostname &&
                       s->creds->endpoint == BD_TLS_ENDPOINT_CLIENT) {
                bd_error_setg(errp, "No hostname for certificate validation");
                ok = false;
            }
        }
        gnutls_x509_crt_deinit(cert);
        if (!ok) {
            return false;
        }
    }
    return true;
}

int tls_session_handshake(BdTlsSession *s, GError **errp)
{
    int ret;

    if (s->handshake_done) {
        return 0;
    }
    do {
        ret = gnutls_handshake(s->handle);
    } while (ret == GNUTLS_E_INTERRUPTED);
    if (ret == GNUTLS_E_AGAIN) {
        return -EAGAIN;
    }
    if (ret < 0) {
        bd_error_setg(errp, "TLS handshake failed: %s", gnutls_strerror(ret));
        return -1;
    }
    /* anon and PSK have nothing more to check; x509 only if asked */
    if (s->creds->kind == TLS_CREDS_X509 &&
        g_atomic_int_get(&s->creds->verify_peer) &&
        !check_certificate(s, errp)) {
        return -1;
    }
    s->handshake_done = true;
    return 0;
}

ssize_t tls_session_read(BdTlsSession *s, void *buf, size_t len,
                         GError **errp)
{
    ssize_t ret;

    do {
        ret = gnutls_record_recv(s->handle, buf, len);
    } while (ret == GNUTLS_E_INTERRUPTED);
    if (ret == GNUTLS_E_AGAIN) {
        return -EAGAIN;
    }
    if (ret < 0) {
        bd_error_setg(errp, "Cannot read from TLS channel: %s",
                      gnutls_strerror(ret));
        return -1;
    }
    return ret;
}

ssize_t tls_session_writev(BdTlsSession *s, const struct iovec *iov,
                           int iovcnt, GError **errp)
{
    const void *buf;
    size_t len;
    ssize_t ret;

    if (s->wbuf_pending) {
        /* a gathered record waits: gnutls wants the same bytes again */
        buf = s->wbuf;
        len = s->wbuf_pending;
    } else if (iovcnt == 1 || iov[0].iov_len >= TLS_RECORD_MAX) {
        buf = iov[0].iov_base;
        len = iov[0].iov_len;
    } else {
        /* gather small pieces (headers and their payload) in one record */
        if (!s->wbuf) {
            s->wbuf = g_malloc(TLS_RECORD_MAX);
        }
        len = 0;
        for (int i = 0; i < iovcnt && len < TLS_RECORD_MAX; i++) {
            size_t n = MIN(iov[i].iov_len, TLS_RECORD_MAX - len);

            memcpy(s->wbuf + len, iov[i].iov_base, n);
            len += n;
        }
        buf = s->wbuf;
    }
    do {
        ret = gnutls_record_send(s->handle, buf, len);
    } while (ret == GNUTLS_E_INTERRUPTED);
    if (ret == GNUTLS_E_AGAIN) {
        if (buf == s->wbuf) {
            s->wbuf_pending = len;
        }
        return -EAGAIN;
    }
    s->wbuf_pending = 0;
    if (ret < 0) {
        bd_error_setg(errp, "Cannot write to TLS channel: %s",
                      gnutls_strerror(ret));
        return -1;
    }
    return ret;
}

bool tls_session_wants_write(BdTlsSession *s)
{
    return gnutls_record_get_direction(s->handle) == 1;
}

size_t tls_session_pending(BdTlsSession *s)
{
    return gnutls_record_check_pending(s->handle);
}

char *tls_session_get_peer_name(BdTlsSession *s)
{
    return g_strdup(s->peer_name);
}
