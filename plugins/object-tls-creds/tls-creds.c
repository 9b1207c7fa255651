/*
 * object-tls-creds: the tls-creds-anon, tls-creds-psk and tls-creds-x509
 * object types.
 *
 * An object loads its files when it is completed, with QEMU's checks and
 * messages, into a BdTlsCreds that sessions share by reference (see
 * <blockd/tls.h>): deleting the object does not disturb servers and
 * connections that use it.  Servers without a dh-params.pem use the
 * RFC 7919 group of 2048 bits instead of generating parameters of that
 * size at start-up as QEMU does: the same strength, without the wait.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "tls-creds-int.h"
#include "object-tls-creds-schema.h"

/* File names inside 'dir', as QEMU reads them. */
#define FILE_CA_CERT "ca-cert.pem"
#define FILE_CA_CRL "ca-crl.pem"
#define FILE_SERVER_CERT "server-cert.pem"
#define FILE_SERVER_KEY "server-key.pem"
#define FILE_CLIENT_CERT "client-cert.pem"
#define FILE_CLIENT_KEY "client-key.pem"
#define FILE_DH_PARAMS "dh-params.pem"
#define FILE_PSK "keys.psk"

/* The most CA certificates the sanity check reads from ca-cert.pem. */
#define MAX_CA_CERTS 16

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

/* --- the shared credentials ------------------------------------------- */

void tls_creds_unref(BdTlsCreds *creds)
{
    if (!creds || !g_atomic_int_dec_and_test(&creds->refcnt)) {
        return;
    }
    switch (creds->kind) {
    case TLS_CREDS_ANON:
        if (creds->endpoint == BD_TLS_ENDPOINT_SERVER) {
            if (creds->u.anon_server) {
                gnutls_anon_free_server_credentials(creds->u.anon_server);
            }
        } else if (creds->u.anon_client) {
            gnutls_anon_free_client_credentials(creds->u.anon_client);
        }
        break;
    case TLS_CREDS_PSK:
        if (creds->endpoint == BD_TLS_ENDPOINT_SERVER) {
            if (creds->u.psk_server) {
                gnutls_psk_free_server_credentials(creds->u.psk_server);
            }
        } else if (creds->u.psk_client) {
            gnutls_psk_free_client_credentials(creds->u.psk_client);
        }
        break;
    case TLS_CREDS_X509:
        if (creds->u.x509) {
            gnutls_certificate_free_credentials(creds->u.x509);
        }
        break;
    }
    if (creds->dh_params) {
        gnutls_dh_params_deinit(creds->dh_params);
    }
    g_free(creds->priority);
    g_free(creds);
}

/* --- files ------------------------------------------------------------- */

/*
 * The path of @name in @dir in *@path, or NULL when it does not exist and
 * is not @required.  False with @errp set when it cannot be used.
 */
static bool get_path(TlsCredsObject *t, const char *name, bool required,
                     char **path, GError **errp)
{
    struct stat st;

    *path = NULL;
    if (!t->dir) {
        if (required) {
            tls_set_err(errp, "Missing 'dir' property value");
            return false;
        }
        return true;
    }
    *path = g_strdup_printf("%s/%s", t->dir, name);
    if (stat(*path, &st) < 0) {
        int err = errno;

        if (err != ENOENT || required) {
            tls_set_err(errp, "Unable to access credentials %s: %s", *path,
                        g_strerror(err));
        }
        g_clear_pointer(path, g_free);
        return err == ENOENT && !required;
    }
    return true;
}

/* Load dh-params.pem (@file) into creds->dh_params; NULL: leave it unset. */
static bool load_dh_params(BdTlsCreds *creds, const char *file,
                           GError **errp)
{
    g_autofree char *text = NULL;
    GError *err = NULL;
    gnutls_datum_t data;
    gsize len;
    int ret;

    if (!file) {
        return true;
    }
    if (!g_file_get_contents(file, &text, &len, &err)) {
        tls_set_err(errp, "%s", err->message);
        g_error_free(err);
        return false;
    }
    ret = gnutls_dh_params_init(&creds->dh_params);
    if (ret < 0) {
        tls_set_err(errp, "Unable to initialize DH parameters: %s",
                    gnutls_strerror(ret));
        return false;
    }
    data.data = (unsigned char *)text;
    data.size = len;
    ret = gnutls_dh_params_import_pkcs3(creds->dh_params, &data,
                                        GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        gnutls_dh_params_deinit(creds->dh_params);
        creds->dh_params = NULL;
        tls_set_err(errp, "Unable to load DH parameters from %s: %s", file,
                    gnutls_strerror(ret));
        return false;
    }
    return true;
}

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
        tls_set_err(errp, "The %s certificate %s has expired",
                    cert_role(is_server, is_ca), file);
        return false;
    }
    if (gnutls_x509_crt_get_activation_time(cert) > now) {
        tls_set_err(errp, "The %s certificate %s is not yet active",
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
            tls_set_err(errp, "The certificate %s basic constraints show a CA, "
                        "but we need one for a %s", file,
                        is_server ? "server" : "client");
            return false;
        }
    } else if (st == 0) {
        if (is_ca) {
            tls_set_err(errp, "The certificate %s basic constraints do not "
                        "show a CA", file);
            return false;
        }
    } else if (st == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        if (is_ca) {
            tls_set_err(errp, "The certificate %s is missing basic constraints "
                        "for a CA", file);
            return false;
        }
    } else {
        tls_set_err(errp,
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
        tls_set_err(errp, "Unable to query certificate %s key usage: %s", file,
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
        tls_set_err(errp, "Certificate %s usage does not permit certificate "
                    "signing", file);
        return false;
    }
    if (!is_ca && !(usage & GNUTLS_KEY_DIGITAL_SIGNATURE)) {
        tls_set_err(errp, "Certificate %s usage does not permit digital "
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
            tls_set_err(errp, "Unable to query certificate %s key purpose: %s",
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
        tls_set_err(errp, "Certificate %s purpose does not allow use with a "
                    "TLS server", file);
        return false;
    }
    if (critical && !is_server && !for_client) {
        tls_set_err(errp, "Certificate %s purpose does not allow use with a "
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
        tls_set_err(errp, "Cannot load CA cert list %s: %s", file,
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
            tls_set_err(errp, "Unable to initialize certificate: %s",
                        gnutls_strerror(ret));
            return false;
        }
        if (!read_pem(cert_file, &data, &text, errp)) {
            goto out;
        }
        ret = gnutls_x509_crt_import(cert, &data, GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            tls_set_err(errp, "Unable to import %s certificate %s: %s",
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
            tls_set_err(errp, "Unable to import CA certificate list %s",
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
            tls_set_err(errp, "Unable to verify %s certificate %s against CA "
                        "certificate %s", is_server ? "server" : "client",
                        cert_file, ca_file);
            goto out;
        }
        if (status) {
            tls_set_err(errp, "Our own certificate %s failed validation "
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

/* --- loading ------------------------------------------------------------ */

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
        tls_set_err(errp, "No secret with id '%s'", id);
        return NULL;
    }
    ops = bd_object_get_interface(obj, BD_SECRET_INTERFACE);
    if (!ops || ops->struct_size < G_STRUCT_OFFSET(BdSecretInterface,
                                                   get_data) +
                                   sizeof(ops->get_data) || !ops->get_data) {
        tls_set_err(errp, "Object with id '%s' is not a secret", id);
        return NULL;
    }
    if (!ops->get_data(obj, &data, &len, errp)) {
        return NULL;
    }
    if (!g_utf8_validate((const char *)data, len, NULL)) {
        tls_set_err(errp, "Data from secret %s is not valid UTF-8", id);
        memset(data, 0, len);
        g_free(data);
        return NULL;
    }
    return (char *)data;
}

static bool load_x509(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    bool server = t->endpoint == BD_TLS_ENDPOINT_SERVER;
    g_autofree char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
    g_autofree char *dh = NULL;
    int ret;

    if (!get_path(t, FILE_CA_CERT, true, &ca, errp)) {
        return false;
    }
    if (server) {
        if (!get_path(t, FILE_CA_CRL, false, &crl, errp) ||
            !get_path(t, FILE_SERVER_CERT, true, &cert, errp) ||
            !get_path(t, FILE_SERVER_KEY, true, &key, errp) ||
            !get_path(t, FILE_DH_PARAMS, false, &dh, errp)) {
            return false;
        }
    } else if (!get_path(t, FILE_CLIENT_CERT, false, &cert, errp) ||
               !get_path(t, FILE_CLIENT_KEY, false, &key, errp)) {
        return false;
    }
    if (t->sanity_check && !x509_sanity_check(server, ca, cert, errp)) {
        return false;
    }
    ret = gnutls_certificate_allocate_credentials(&creds->u.x509);
    if (ret < 0) {
        tls_set_err(errp, "Cannot allocate credentials: '%s'",
                    gnutls_strerror(ret));
        return false;
    }
    ret = gnutls_certificate_set_x509_trust_file(creds->u.x509, ca,
                                                 GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        tls_set_err(errp, "Cannot load CA certificate '%s': %s", ca,
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
            tls_set_err(errp, "Cannot load certificate '%s' & key '%s': %s",
                        cert, key, gnutls_strerror(ret));
            return false;
        }
    }
    if (crl) {
        ret = gnutls_certificate_set_x509_crl_file(creds->u.x509, crl,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            tls_set_err(errp, "Cannot load CRL '%s': %s", crl,
                        gnutls_strerror(ret));
            return false;
        }
    }
    if (server) {
        if (!load_dh_params(creds, dh, errp)) {
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
static char *lookup_psk(const char *file, const char *user, GError **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    size_t ulen = strlen(user);
    GError *err = NULL;

    if (!g_file_get_contents(file, &text, NULL, &err)) {
        tls_set_err(errp, "Cannot read PSK file %s: %s", file, err->message);
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
    tls_set_err(errp, "Username %s not found in PSK file %s", user, file);
    return NULL;
}

static bool load_psk(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    g_autofree char *file = NULL, *dh = NULL;
    int ret;

    if (t->endpoint == BD_TLS_ENDPOINT_SERVER) {
        if (t->username) {
            tls_set_err(errp,
                        "username should not be set when endpoint=server");
            return false;
        }
        if (!get_path(t, FILE_DH_PARAMS, false, &dh, errp) ||
            !get_path(t, FILE_PSK, true, &file, errp)) {
            return false;
        }
        ret = gnutls_psk_allocate_server_credentials(&creds->u.psk_server);
        if (ret < 0) {
            tls_set_err(errp, "Cannot allocate credentials: %s",
                        gnutls_strerror(ret));
            return false;
        }
        if (!load_dh_params(creds, dh, errp)) {
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

        if (!get_path(t, FILE_PSK, true, &file, errp)) {
            return false;
        }
        key = lookup_psk(file, user, errp);
        if (!key) {
            return false;
        }
        ret = gnutls_psk_allocate_client_credentials(&creds->u.psk_client);
        if (ret < 0) {
            memset(key, 0, strlen(key));
            tls_set_err(errp, "Cannot allocate credentials: %s",
                        gnutls_strerror(ret));
            return false;
        }
        datum.data = (unsigned char *)key;
        datum.size = strlen(key);
        ret = gnutls_psk_set_client_credentials(creds->u.psk_client, user,
                                                &datum, GNUTLS_PSK_KEY_HEX);
        memset(key, 0, datum.size);
        if (ret < 0) {
            tls_set_err(errp, "Cannot set PSK client credentials: %s",
                        gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}

static bool load_anon(TlsCredsObject *t, BdTlsCreds *creds, GError **errp)
{
    g_autofree char *dh = NULL;
    int ret;

    if (t->endpoint == BD_TLS_ENDPOINT_SERVER) {
        if (!get_path(t, FILE_DH_PARAMS, false, &dh, errp)) {
            return false;
        }
        ret = gnutls_anon_allocate_server_credentials(&creds->u.anon_server);
        if (ret < 0) {
            tls_set_err(errp, "Cannot allocate credentials: %s",
                        gnutls_strerror(ret));
            return false;
        }
        if (!load_dh_params(creds, dh, errp)) {
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
            tls_set_err(errp, "Cannot allocate credentials: %s",
                        gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}

/* --- the object types --------------------------------------------------- */

static bool creds_create(BdObject *obj, JsonObject *props, TlsCredsKind kind,
                         GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);
    const char *endpoint;

    if (json_object_has_member(props, "loaded")) {
        /* read-only in QEMU 7.2 although the schema lists it */
        tls_set_err(errp, "Property '%s.loaded' is not writable",
                    bd_object_get_type_name(obj));
        return false;
    }
    t->kind = kind;
    t->verify_peer = json_object_get_boolean_member_with_default(
        props, "verify-peer", true);
    t->sanity_check = json_object_get_boolean_member_with_default(
        props, "sanity-check", true);
    endpoint = json_object_get_string_member_with_default(props, "endpoint",
                                                          "client");
    t->endpoint = strcmp(endpoint, "server") == 0 ? BD_TLS_ENDPOINT_SERVER
                                                  : BD_TLS_ENDPOINT_CLIENT;
    t->dir = g_strdup(json_object_get_string_member_with_default(
        props, "dir", NULL));
    t->priority = g_strdup(json_object_get_string_member_with_default(
        props, "priority", NULL));
    t->username = g_strdup(json_object_get_string_member_with_default(
        props, "username", NULL));
    t->passwordid = g_strdup(json_object_get_string_member_with_default(
        props, "passwordid", NULL));
    return true;
}

static bool anon_create(BdObject *obj, JsonObject *props, GError **errp)
{
    return creds_create(obj, props, TLS_CREDS_ANON, errp);
}

static bool psk_create(BdObject *obj, JsonObject *props, GError **errp)
{
    return creds_create(obj, props, TLS_CREDS_PSK, errp);
}

static bool x509_create(BdObject *obj, JsonObject *props, GError **errp)
{
    return creds_create(obj, props, TLS_CREDS_X509, errp);
}

/* Load the files now that other objects (a passwordid) can be found. */
static bool creds_complete(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);
    BdTlsCreds *creds = g_new0(BdTlsCreds, 1);
    bool ok;

    creds->refcnt = 1;
    creds->kind = t->kind;
    creds->endpoint = t->endpoint;
    creds->verify_peer = t->verify_peer;
    creds->priority = g_strdup(t->priority);
    switch (t->kind) {
    case TLS_CREDS_ANON:
        ok = load_anon(t, creds, errp);
        break;
    case TLS_CREDS_PSK:
        ok = load_psk(t, creds, errp);
        break;
    default:
        ok = load_x509(t, creds, errp);
        break;
    }
    if (!ok) {
        tls_creds_unref(creds);
        return false;
    }
    t->creds = creds;
    return true;
}

static void creds_destroy(BdObject *obj)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    tls_creds_unref(t->creds);
    g_free(t->dir);
    g_free(t->priority);
    g_free(t->username);
    g_free(t->passwordid);
}

/* --- the interface ------------------------------------------------------ */

static BdTlsCreds *iface_get_creds(BdObject *obj)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    g_atomic_int_inc(&t->creds->refcnt);
    return t->creds;
}

static BdTlsEndpoint iface_get_endpoint(BdTlsCreds *creds)
{
    return creds->endpoint;
}

static const BdTlsInterface tls_ops = {
    .struct_size = sizeof(BdTlsInterface),
    .get_creds = iface_get_creds,
    .creds_unref = tls_creds_unref,
    .creds_get_endpoint = iface_get_endpoint,
    .session_new = tls_session_new,
    .handshake = tls_session_handshake,
    .read = tls_session_read,
    .writev = tls_session_writev,
    .wants_write = tls_session_wants_write,
    .pending = tls_session_pending,
    .get_peer_name = tls_session_get_peer_name,
    .session_free = tls_session_free,
};

static const BdObjectInterface creds_interfaces[] = {
    { BD_TLS_INTERFACE, &tls_ops },
    { NULL, NULL },
};

#define CREDS_TYPE(cname, tname, desc, create_fn)                     \
    static const BdObjectType cname = {                               \
        .struct_size = sizeof(BdObjectType),                          \
        .name = tname,                                                \
        .description = desc,                                          \
        .parent = "tls-creds",                                        \
        .instance_size = sizeof(TlsCredsObject),                      \
        .create = create_fn,                                          \
        .complete = creds_complete,                                   \
        .destroy = creds_destroy,                                     \
        .interfaces = creds_interfaces,                               \
    }

CREDS_TYPE(anon_type, "tls-creds-anon",
           "TLS credentials for anonymous Diffie-Hellman", anon_create);
CREDS_TYPE(psk_type, "tls-creds-psk",
           "TLS credentials from pre-shared keys", psk_create);
CREDS_TYPE(x509_type, "tls-creds-x509",
           "TLS credentials from x509 certificates", x509_create);

static bool object_tls_creds_init(BdRegistry *reg, GError **errp)
{
    int ret = gnutls_global_init();

    if (ret < 0) {
        tls_set_err(errp, "Cannot initialize gnutls: %s", gnutls_strerror(ret));
        return false;
    }
    return bd_registry_add_object_type(reg, &anon_type, errp) &&
           bd_registry_add_object_type(reg, &psk_type, errp) &&
           bd_registry_add_object_type(reg, &x509_type, errp);
}

BD_PLUGIN_DEFINE("object-tls-creds", "0.1.0",
                 "TLS credentials objects (x509, PSK, anonymous) and TLS "
                 "sessions for other plugins",
                 "GPL-2.0-or-later", object_tls_creds_schema,
                 object_tls_creds_init);
