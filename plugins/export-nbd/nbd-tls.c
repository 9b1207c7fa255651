/*
 * export-nbd: TLS for NBD connections (see nbd-tls.h).
 *
 * The credentials are held by reference, as QEMU holds the object: the
 * tls-creds object may be deleted while the server runs and connections
 * carry on with what it had loaded.
 */
#include <errno.h>

#include "nbd-tls.h"

struct NbdTlsConfig {
    const BdTlsInterface *ops;
    BdTlsCreds *creds;
    char *authz_id;
    gint refcnt;
};

struct NbdTls {
    NbdTlsConfig *cfg;
    int fd;
    BdTlsSession *session;
};

/* Whether the provider's table is long enough to have @field, and sets it. */
#define HAS_OP(ops, field) \
    ((ops)->struct_size >= G_STRUCT_OFFSET(BdTlsInterface, field) + \
     sizeof((ops)->field) && (ops)->field)

NbdTlsConfig *nbd_tls_config_new(const char *creds_id, const char *authz_id,
                                 GError **errp)
{
    BdObject *obj = bd_object_find(creds_id, NULL);
    const BdTlsInterface *ops;
    NbdTlsConfig *cfg;

    if (!obj) {
        bd_error_setg(errp, "No TLS credentials with id '%s'", creds_id);
        return NULL;
    }
    ops = bd_object_find(creds_id, "tls-creds") ?
          bd_object_get_interface(obj, BD_TLS_INTERFACE) : NULL;
    if (!ops || !HAS_OP(ops, session_free)) {
        bd_error_setg(errp,
                      "Object with id '%s' is not TLS credentials", creds_id);
        return NULL;
    }
    cfg = g_new0(NbdTlsConfig, 1);
    cfg->refcnt = 1;
    cfg->ops = ops;
    cfg->creds = ops->get_creds(obj);
    cfg->authz_id = g_strdup(authz_id);
    if (ops->creds_get_endpoint(cfg->creds) != BD_TLS_ENDPOINT_SERVER) {
        bd_error_setg(errp, "Expected TLS credentials for a server endpoint");
        nbd_tls_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void nbd_tls_config_free(NbdTlsConfig *cfg)
{
    if (cfg && g_atomic_int_dec_and_test(&cfg->refcnt)) {
        cfg->ops->creds_unref(cfg->creds);
        g_free(cfg->authz_id);
        g_free(cfg);
    }
}

NbdTls *nbd_tls_new(NbdTlsConfig *cfg, int fd)
{
    NbdTls *t = g_new0(NbdTls, 1);

    g_atomic_int_inc(&cfg->refcnt);
    t->cfg = cfg;
    t->fd = fd;
    return t;
}

void nbd_tls_free(NbdTls *t)
{
    if (t) {
        t->cfg->ops->session_free(t->session);
        nbd_tls_config_free(t->cfg);
        g_free(t);
    }
}

bool nbd_tls_start(NbdTls *t, GError **errp)
{
    t->session = t->cfg->ops->session_new(t->cfg->creds, t->fd, NULL,
                                          t->cfg->authz_id, errp);
    return t->session != NULL;
}

int nbd_tls_handshake(NbdTls *t, GError **errp)
{
    return t->cfg->ops->handshake(t->session, errp);
}

bool nbd_tls_wants_write(NbdTls *t)
{
    return t->cfg->ops->wants_write(t->session);
}

/* Map the interface's results to the socket calls' conventions. */
static ssize_t to_errno(ssize_t ret, GError *err)
{
    if (ret >= 0) {
        return ret;
    }
    g_clear_error(&err);
    errno = ret == -EAGAIN ? EAGAIN : EIO;
    return -1;
}

ssize_t nbd_tls_recv(NbdTls *t, void *buf, size_t len)
{
    GError *err = NULL;
    ssize_t ret = t->cfg->ops->read(t->session, buf, len, &err);

    return to_errno(ret, err);
}

ssize_t nbd_tls_sendv(NbdTls *t, const struct iovec *iov, int cnt)
{
    GError *err = NULL;
    ssize_t ret = t->cfg->ops->writev(t->session, iov, cnt, &err);

    return to_errno(ret, err);
}
