/*
 * object-tls-creds: tls-creds-anon, anonymous Diffie-Hellman.
 */
#include "tls-creds-int.h"

bool tls_load_anon(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    g_autofree char *dh = NULL;
    int ret;

    if (t->endpoint == BD_TLS_ENDPOINT_SERVER) {
        if (!tls_get_path(t, FILE_DH_PARAMS, false, &dh, errp)) {
            return false;
        }
        ret = gnutls_anon_allocate_server_credentials(&creds->u.anon_server);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot allocate credentials: %s",
                          gnutls_strerror(ret));
            return false;
        }
        if (!tls_load_dh_params(creds, dh, errp)) {
            return false;
        }
        if (creds->dh_params) {
            gnutls_anon_set_server_dh_params(creds->u.anon_server,
                                             creds->dh_params);
        } else {
            gnutls_anon_set_server_known_dh_params(creds->u.anon_server,
                                                   GNUTLS_SEC_PARAM_MEDIUM);
        }
    } else {
        ret = gnutls_anon_allocate_client_credentials(&creds->u.anon_client);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot allocate credentials: %s",
                          gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}
