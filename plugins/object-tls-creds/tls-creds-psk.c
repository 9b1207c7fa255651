/*
 * object-tls-creds: tls-creds-psk, pre-shared keys from 'dir'/keys.psk.
 */
#include <string.h>

#include "tls-creds-int.h"

static char *lookup_psk(const char *file, const char *user, GError **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    size_t ulen = strlen(user);
    GError *err = NULL;

    if (!g_file_get_contents(file, &text, NULL, &err)) {
        bd_error_setg(errp, "Cannot read PSK file %s: %s", file, err->message);
        g_error_free(err);
        return NULL;
    }
    lines = g_strsplit(text, "\n", -1);
    memset(text, 0, strlen(text));
    for (size_t i = 0; lines[i]; i++) {
        if (strncmp(lines[i], user, ulen) == 0 && lines[i][ulen] == ':') {
            char *key = g_strdup(lines[i] + ulen + 1);

            for (size_t j = 0; lines[j]; j++) {
                memset(lines[j], 0, strlen(lines[j]));
            }
            return key;
        }
    }
    bd_error_setg(errp, "Username %s not found in PSK file %s", user, file);
    return NULL;
}

bool tls_load_psk(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    g_autofree char *file = NULL, *dh = NULL;
    int ret;

    if (t->endpoint == BD_TLS_ENDPOINT_SERVER) {
        if (t->username) {
            bd_error_setg(errp,
                          "username should not be set when endpoint=server");
            return false;
        }
        if (!tls_get_path(t, FILE_DH_PARAMS, false, &dh, errp) ||
            !tls_get_path(t, FILE_PSK, true, &file, errp)) {
            return false;
        }
        ret = gnutls_psk_allocate_server_credentials(&creds->u.psk_server);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot allocate credentials: %s",
                          gnutls_strerror(ret));
            return false;
        }
        if (!tls_load_dh_params(creds, dh, errp)) {
            return false;
        }
        gnutls_psk_set_server_credentials_file(creds->u.psk_server, file);
        if (creds->dh_params) {
            gnutls_psk_set_server_dh_params(creds->u.psk_server,
                                            creds->dh_params);
        } else {
            gnutls_psk_set_server_known_dh_params(creds->u.psk_server,
                                                  GNUTLS_SEC_PARAM_MEDIUM);
        }
    } else {
        const char *user = t->username ? t->username : "qemu";
        g_autofree char *key = NULL;
        gnutls_datum_t datum;

        if (!tls_get_path(t, FILE_PSK, true, &file, errp)) {
            return false;
        }
        key = lookup_psk(file, user, errp);
        if (!key) {
            return false;
        }
        ret = gnutls_psk_allocate_client_credentials(&creds->u.psk_client);
        if (ret < 0) {
            memset(key, 0, strlen(key));
            bd_error_setg(errp, "Cannot allocate credentials: %s",
                          gnutls_strerror(ret));
            return false;
        }
        datum.data = (unsigned char *)key;
        datum.size = strlen(key);
        ret = gnutls_psk_set_client_credentials(creds->u.psk_client, user,
                                                &datum, GNUTLS_PSK_KEY_HEX);
        memset(key, 0, datum.size);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot set PSK client credentials: %s",
                          gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}

