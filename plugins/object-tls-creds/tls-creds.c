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
#include <unistd.h>

#include "tls-creds-int.h"
#include "object-tls-creds-schema.h"

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
    if (creds->old_priorities) {
        g_ptr_array_unref(creds->old_priorities);
    }
    g_free(creds);
}

/* --- files ------------------------------------------------------------- */

/*
 * The path of @name in @dir in *@path, or NULL when it does not exist and
 * is not @required.  False with @errp set when it cannot be used.
 */
bool tls_get_path(TlsCredsObject *t, const char *name, bool required,
                  char **path, GError **errp)
{
    struct stat st;

    *path = NULL;
    if (!t->dir) {
        if (required) {
            bd_error_setg(errp, "Missing 'dir' property value");
            return false;
        }
        return true;
    }
    *path = g_strdup_printf("%s/%s", t->dir, name);
    if (stat(*path, &st) < 0) {
        int err = errno;

        if (err != ENOENT || required) {
            bd_error_setg(errp, "Unable to access credentials %s: %s", *path,
                          g_strerror(err));
        }
        g_clear_pointer(path, g_free);
        return err == ENOENT && !required;
    }
    return true;
}

/* Load dh-params.pem (@file) into creds->dh_params; NULL: leave it unset. */
bool tls_load_dh_params(BdTlsCreds *creds, const char *file,
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
        bd_error_setg(errp, "%s", err->message);
        g_error_free(err);
        return false;
    }
    ret = gnutls_dh_params_init(&creds->dh_params);
    if (ret < 0) {
        bd_error_setg(errp, "Unable to initialize DH parameters: %s",
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
        bd_error_setg(errp, "Unable to load DH parameters from %s: %s", file,
                      gnutls_strerror(ret));
        return false;
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
        bd_error_setg(errp, "Property '%s.loaded' is not writable",
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
    creds->old_priorities = g_ptr_array_new_with_free_func(g_free);
    switch (t->kind) {
    case TLS_CREDS_ANON:
        ok = tls_load_anon(t, creds, errp);
        break;
    case TLS_CREDS_PSK:
        ok = tls_load_psk(t, creds, errp);
        break;
    default:
        ok = tls_load_x509(t, creds, errp);
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

/*
 * --- QOM properties (qom-get, qom-set) ---------------------------------
 *
 * As in QEMU 7.2: verify-peer and priority are read by every new session,
 * so a change applies to the next connections; dir, endpoint, username,
 * sanity-check and passwordid are read when the files are loaded, so a
 * change is only stored.  Unset strings read as "".
 */

static JsonNode *str_node(const char *v)
{
    return json_node_init_string(json_node_alloc(), v ? v : "");
}

static bool store_str(char **field, JsonNode *value, const char *name,
                      GError **errp)
{
    const char *v;

    if (!bd_object_property_str(value, name, &v, errp)) {
        return false;
    }
    g_free(*field);
    *field = g_strdup(v);
    return true;
}

#define STR_PROP(NAME, FIELD)                                             \
    static JsonNode *get_##FIELD(BdObject *obj, GError **errp)            \
    {                                                                     \
        TlsCredsObject *t = bd_object_get_opaque(obj);                    \
        return str_node(t->FIELD);                                        \
    }                                                                     \
    static bool set_##FIELD(BdObject *obj, JsonNode *value,               \
                            GError **errp)                                \
    {                                                                     \
        TlsCredsObject *t = bd_object_get_opaque(obj);                    \
        return store_str(&t->FIELD, value, NAME, errp);                   \
    }
STR_PROP("dir", dir)
STR_PROP("username", username)
STR_PROP("passwordid", passwordid)

static JsonNode *get_priority(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return str_node(t->priority);
}

static bool set_priority(BdObject *obj, JsonNode *value, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);
    char *old;

    if (!store_str(&t->priority, value, "priority", errp)) {
        return false;
    }
    if (t->creds) {
        old = g_atomic_pointer_exchange(&t->creds->priority,
                                        g_strdup(t->priority));
        if (old) {
            g_ptr_array_add(t->creds->old_priorities, old);
        }
    }
    return true;
}

static JsonNode *get_verify_peer(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return json_node_init_boolean(json_node_alloc(), t->verify_peer);
}

static bool set_verify_peer(BdObject *obj, JsonNode *value, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);
    bool v;

    if (!bd_object_property_bool(value, "verify-peer", &v, errp)) {
        return false;
    }
    t->verify_peer = v;
    if (t->creds) {
        g_atomic_int_set(&t->creds->verify_peer, v);
    }
    return true;
}

static JsonNode *get_sanity_check(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return json_node_init_boolean(json_node_alloc(), t->sanity_check);
}

static bool set_sanity_check(BdObject *obj, JsonNode *value, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return bd_object_property_bool(value, "sanity-check", &t->sanity_check,
                                   errp);
}

static JsonNode *get_endpoint(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return str_node(t->endpoint == BD_TLS_ENDPOINT_SERVER ? "server"
                                                          : "client");
}

static bool set_endpoint(BdObject *obj, JsonNode *value, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);
    const char *v;

    if (!bd_object_property_str(value, "endpoint", &v, errp)) {
        return false;
    }
    if (strcmp(v, "server") && strcmp(v, "client")) {
        bd_error_setg(errp,
                      "Parameter 'endpoint' does not accept value '%s'", v);
        return false;
    }
    /* the loaded credentials keep theirs: sessions must match them */
    t->endpoint = strcmp(v, "server") == 0 ? BD_TLS_ENDPOINT_SERVER
                                           : BD_TLS_ENDPOINT_CLIENT;
    return true;
}

static JsonNode *get_loaded(BdObject *obj, GError **errp)
{
    TlsCredsObject *t = bd_object_get_opaque(obj);

    return json_node_init_boolean(json_node_alloc(), t->creds != NULL);
}

/* in the order qemu-storage-daemon's qom-list shows them */
#define BASE_PROPERTIES                                                   \
    { "endpoint", "QCryptoTLSCredsEndpoint", get_endpoint, set_endpoint }, \
    { "dir", "string", get_dir, set_dir },                                \
    { "verify-peer", "bool", get_verify_peer, set_verify_peer },          \
    { "priority", "string", get_priority, set_priority }

static const BdObjectProperty anon_properties[] = {
    BASE_PROPERTIES,
    { "loaded", "bool", get_loaded, NULL },
    { NULL },
};

static const BdObjectProperty psk_properties[] = {
    BASE_PROPERTIES,
    { "username", "string", get_username, set_username },
    { "loaded", "bool", get_loaded, NULL },
    { NULL },
};

static const BdObjectProperty x509_properties[] = {
    BASE_PROPERTIES,
    { "loaded", "bool", get_loaded, NULL },
    { "sanity-check", "bool", get_sanity_check, set_sanity_check },
    { "passwordid", "string", get_passwordid, set_passwordid },
    { NULL },
};

#define CREDS_TYPE(cname, tname, desc, create_fn, props)              \
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
        .properties = props,                                          \
    }

CREDS_TYPE(anon_type, "tls-creds-anon",
           "TLS credentials for anonymous Diffie-Hellman", anon_create,
           anon_properties);
CREDS_TYPE(psk_type, "tls-creds-psk",
           "TLS credentials from pre-shared keys", psk_create,
           psk_properties);
CREDS_TYPE(x509_type, "tls-creds-x509",
           "TLS credentials from x509 certificates", x509_create,
           x509_properties);

static bool object_tls_creds_init(BdRegistry *reg, GError **errp)
{
    int ret = gnutls_global_init();

    if (ret < 0) {
        bd_error_setg(errp,
                      "Cannot initialize gnutls: %s", gnutls_strerror(ret));
        return false;
    }
    return bd_registry_add_object_type(reg, &anon_type, errp) &&
           bd_registry_add_object_type(reg, &psk_type, errp) &&
           bd_registry_add_object_type(reg, &x509_type, errp);
}

BD_PLUGIN(.name = "object-tls-creds",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "TLS credentials objects (x509, PSK, anonymous) "
                         "and TLS sessions for other plugins",
          .license = "GPL-2.0-or-later",
          .schema = object_tls_creds_schema,
          .init = object_tls_creds_init);
