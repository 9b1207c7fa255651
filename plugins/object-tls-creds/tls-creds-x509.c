/*
 * object-tls-creds: tls-creds-x509, certificates and keys from 'dir' with
 * QEMU's sanity checks of them.
 */
#include <string.h>
#include <time.h>

#include <gnutls/x509.h>

#include "tls-creds-int.h"

/* The most CA certificates the sanity check reads from ca-cert.pem. */
#define MAX_CA_CERTS 16

/* --- x509 sanity checks ------------------------------------------------- */

static const char *cert_role(bool is_server, bool is_ca)
{
    return is_ca ? "CA" : is_server ? "server" : "client";
}

static bool check_cert_times(gnutls_x509_crt_t cert, const char *file,
                             bool is_server, bool is_ca, GError **errp)
{
    time_t now = time(NULL);

    if (gnutls_x509_crt_get_expiration_time(cert) < now) {
        bd_error_setg(errp, "The %s certificate %s has expired",
                      cert_role(is_server, is_ca), file);
        return false;
    }
    if (gnutls_x509_crt_get_activation_time(cert) > now) {
        bd_error_setg(errp, "The %s certificate %s is not yet active",
                      cert_role(is_server, is_ca), file);
        return false;
    }
    return true;
}

static bool check_cert_constraints(gnutls_x509_crt_t cert, const char *file,
                                   bool is_server, bool is_ca, GError **errp)
{
    int st = gnutls_x509_crt_get_basic_constraints(cert, NULL, NULL, NULL);

    if (st > 0) {
        if (!is_ca) {
            bd_error_setg(errp,
                          "The certificate %s basic constraints show a CA, "
                          "but we need one for a %s", file,
                          is_server ? "server" : "client");
            return false;
        }
    } else if (st == 0) {
        if (is_ca) {
            bd_error_setg(errp, "The certificate %s basic constraints do not "
                          "show a CA", file);
            return false;
        }
    } else if (st == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        if (is_ca) {
            bd_error_setg(errp,
                          "The certificate %s is missing basic constraints "
                          "for a CA", file);
            return false;
        }
    } else {
        bd_error_setg(errp,
                      "Unable to query certificate %s basic constraints: %s",
                      file, gnutls_strerror(st));
        return false;
    }
    return true;
}

static bool check_cert_usage(gnutls_x509_crt_t cert, const char *file,
                             bool is_ca, GError **errp)
{
    unsigned int usage = 0, critical = 0;
    int st = gnutls_x509_crt_get_key_usage(cert, &usage, &critical);

    if (st == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        /* no extension: every usage the role needs is allowed */
        return true;
    }
    if (st < 0) {
        bd_error_setg(errp,
                      "Unable to query certificate %s key usage: %s", file,
                      gnutls_strerror(st));
        return false;
    }
    /*
     * Only a critical extension binds; QEMU 7.2 does not ask for key
     * encipherment, which ECDSA certificates do not have.
     */
    if (!critical) {
        return true;
    }
    if (is_ca && !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
        bd_error_setg(errp, "Certificate %s usage does not permit certificate "
                      "signing", file);
        return false;
    }
    if (!is_ca && !(usage & GNUTLS_KEY_DIGITAL_SIGNATURE)) {
        bd_error_setg(errp, "Certificate %s usage does not permit digital "
                      "signature", file);
        return false;
    }
    return true;
}

static bool check_cert_purpose(gnutls_x509_crt_t cert, const char *file,
                               bool is_server, GError **errp)
{
    bool for_server = false, for_client = false, critical = false;

    for (unsigned i = 0;; i++) {
        char oid[256];
        size_t size = sizeof(oid);
        unsigned int crit = 0;
        int st = gnutls_x509_crt_get_key_purpose_oid(cert, i, oid, &size,
                                                     &crit);

        if (st == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            if (i == 0) {
                /* no purposes listed: any is allowed */
                for_server = for_client = true;
            }
            break;
        }
        if (st < 0) {
            bd_error_setg(errp,
                          "Unable to query certificate %s key purpose: %s",
                          file, gnutls_strerror(st));
            return false;
        }
        critical |= crit != 0;
        if (strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER) == 0) {
            for_server = true;
        } else if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0) {
            for_client = true;
        } else if (strcmp(oid, GNUTLS_KP_ANY) == 0) {
            for_server = for_client = true;
        }
    }
    if (critical && is_server && !for_server) {
        bd_error_setg(errp, "Certificate %s purpose does not allow use with a "
                      "TLS server", file);
        return false;
    }
    if (critical && !is_server && !for_client) {
        bd_error_setg(errp, "Certificate %s purpose does not allow use with a "
                      "TLS client", file);
        return false;
    }
    return true;
}

static bool check_cert(gnutls_x509_crt_t cert, const char *file,
                       bool is_server, bool is_ca, GError **errp)
{
    return check_cert_times(cert, file, is_server, is_ca, errp) &&
           check_cert_constraints(cert, file, is_server, is_ca, errp) &&
           check_cert_usage(cert, file, is_ca, errp) &&
           (is_ca || check_cert_purpose(cert, file, is_server, errp));
}

static const char *verify_status_text(unsigned int status)
{
    /* the most telling reason wins, as in QEMU */
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
        return "The certificate uses an insecure algorithm";
    }
    if (status & GNUTLS_CERT_REVOKED) {
        return "The certificate has been revoked";
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return "The certificate hasn't got a known issuer";
    }
    if (status & GNUTLS_CERT_INVALID) {
        return "The certificate is not trusted";
    }
    return "Invalid certificate";
}

static bool read_pem(const char *file, gnutls_datum_t *data, char **text,
                     GError **errp)
{
    GError *err = NULL;
    gsize len;

    if (!g_file_get_contents(file, text, &len, &err)) {
        bd_error_setg(errp, "Cannot load CA cert list %s: %s", file,
                      err->message);
        g_error_free(err);
        return false;
    }
    data->data = (unsigned char *)*text;
    data->size = strlen(*text);
    return true;
}

/* QEMU's sanity check of the certificate files before they are used. */
static bool x509_sanity_check(bool is_server, const char *ca_file,
                              const char *cert_file, GError **errp)
{
    gnutls_x509_crt_t cert = NULL;
    gnutls_x509_crt_t cas[MAX_CA_CERTS];
    unsigned int ncas = 0;
    bool ok = false;
    int ret;

    if (cert_file && access(cert_file, R_OK) == 0) {
        g_autofree char *text = NULL;
        gnutls_datum_t data;

        ret = gnutls_x509_crt_init(&cert);
        if (ret < 0) {
            bd_error_setg(errp, "Unable to initialize certificate: %s",
                          gnutls_strerror(ret));
            return false;
        }
        if (!read_pem(cert_file, &data, &text, errp)) {
            goto out;
        }
        ret = gnutls_x509_crt_import(cert, &data, GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            bd_error_setg(errp, "Unable to import %s certificate %s: %s",
                          is_server ? "server" : "client", cert_file,
                          gnutls_strerror(ret));
            goto out;
        }
    }
    if (access(ca_file, R_OK) == 0) {
        g_autofree char *text = NULL;
        gnutls_datum_t data;

        if (!read_pem(ca_file, &data, &text, errp)) {
            goto out;
        }
        ncas = MAX_CA_CERTS;
        if (gnutls_x509_crt_list_import(cas, &ncas, &data,
                                        GNUTLS_X509_FMT_PEM, 0) < 0) {
            ncas = 0;
            bd_error_setg(errp, "Unable to import CA certificate list %s",
                          ca_file);
            goto out;
        }
    }
    if (cert && !check_cert(cert, cert_file, is_server, false, errp)) {
        goto out;
    }
    for (unsigned i = 0; i < ncas; i++) {
        if (!check_cert(cas[i], ca_file, is_server, true, errp)) {
            goto out;
        }
    }
    if (cert && ncas) {
        unsigned int status = 0;

        if (gnutls_x509_crt_list_verify(&cert, 1, cas, ncas, NULL, 0, 0,
                                        &status) < 0) {
            bd_error_setg(errp,
                          "Unable to verify %s certificate %s against CA "
                          "certificate %s", is_server ? "server" : "client",
                          cert_file, ca_file);
            goto out;
        }
        if (status) {
            bd_error_setg(errp, "Our own certificate %s failed validation "
                          "against %s: %s", cert_file, ca_file,
                          verify_status_text(status));
            goto out;
        }
    }
    ok = true;
out:
    if (cert) {
        gnutls_x509_crt_deinit(cert);
    }
    for (unsigned i = 0; i < ncas; i++) {
        gnutls_x509_crt_deinit(cas[i]);
    }
    return ok;
}

/*
 * The password of an encrypted key, from the secret object @id, as a new
 * NUL-terminated UTF-8 string; NULL with @errp set when there is none.
 */
static char *lookup_password(const char *id, GError **errp)
{
    BdObject *obj = bd_object_find(id, NULL);
    const BdSecretInterface *ops;
    uint8_t *data = NULL;
    size_t len = 0;

    if (!obj) {
        bd_error_setg(errp, "No secret with id '%s'", id);
        return NULL;
    }
    ops = bd_object_get_interface(obj, BD_SECRET_INTERFACE);
    if (!ops || ops->struct_size < G_STRUCT_OFFSET(BdSecretInterface,
                                                   get_data) +
                                   sizeof(ops->get_data) || !ops->get_data) {
        bd_error_setg(errp, "Object with id '%s' is not a secret", id);
        return NULL;
    }
    if (!ops->get_data(obj, &data, &len, errp)) {
        return NULL;
    }
    if (!g_utf8_validate((const char *)data, len, NULL)) {
        bd_error_setg(errp, "Data from secret %s is not valid UTF-8", id);
        memset(data, 0, len);
        g_free(data);
        return NULL;
    }
    return (char *)data;
}

bool tls_load_x509(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    bool server = t->endpoint == BD_TLS_ENDPOINT_SERVER;
    g_autofree char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
    g_autofree char *dh = NULL;
    int ret;

    if (!tls_get_path(t, FILE_CA_CERT, true, &ca, errp)) {
        return false;
    }
    if (server) {
        if (!tls_get_path(t, FILE_CA_CRL, false, &crl, errp) ||
            !tls_get_path(t, FILE_SERVER_CERT, true, &cert, errp) ||
            !tls_get_path(t, FILE_SERVER_KEY, true, &key, errp) ||
            !tls_get_path(t, FILE_DH_PARAMS, false, &dh, errp)) {
            return false;
        }
    } else if (!tls_get_path(t, FILE_CLIENT_CERT, false, &cert, errp) ||
               !tls_get_path(t, FILE_CLIENT_KEY, false, &key, errp)) {
        return false;
    }
    if (t->sanity_check && !x509_sanity_check(server, ca, cert, errp)) {
        return false;
    }
    ret = gnutls_certificate_allocate_credentials(&creds->u.x509);
    if (ret < 0) {
        bd_error_setg(errp, "Cannot allocate credentials: '%s'",
                      gnutls_strerror(ret));
        return false;
    }
    ret = gnutls_certificate_set_x509_trust_file(creds->u.x509, ca,
                                                 GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        bd_error_setg(errp, "Cannot load CA certificate '%s': %s", ca,
                      gnutls_strerror(ret));
        return false;
    }
    if (cert && key) {
        char *password = NULL;

        if (t->passwordid) {
            password = lookup_password(t->passwordid, errp);
            if (!password) {
                return false;
            }
        }
        ret = gnutls_certificate_set_x509_key_file2(creds->u.x509, cert, key,
                                                    GNUTLS_X509_FMT_PEM,
                                                    password, 0);
        if (password) {
            memset(password, 0, strlen(password));
            g_free(password);
        }
        if (ret < 0) {
            bd_error_setg(errp, "Cannot load certificate '%s' & key '%s': %s",
                          cert, key, gnutls_strerror(ret));
            return false;
        }
    }
    if (crl) {
        ret = gnutls_certificate_set_x509_crl_file(creds->u.x509, crl,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            bd_error_setg(errp, "Cannot load CRL '%s': %s", crl,
                          gnutls_strerror(ret));
            return false;
        }
    }
    if (server) {
        if (!tls_load_dh_params(creds, dh, errp)) {
            return false;
        }
        if (creds->dh_params) {
            gnutls_certificate_set_dh_params(creds->u.x509,
                                             creds->dh_params);
        } else {
            gnutls_certificate_set_known_dh_params(creds->u.x509,
                                                   GNUTLS_SEC_PARAM_MEDIUM);
        }
    }
    return true;
}

/* The hex key of @user in the PSK file @file, as a new string. */
