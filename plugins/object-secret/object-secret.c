/*
 * object-secret: the 'secret' object type, which holds a password or key
 * (and 'secret_keyring', which reads it from a key in the kernel's
 * keyring, as keyctl does) for other plugins (through the "secret" interface of <blockd/secret.h>)
 * so that it never has to appear on a command line in the clear.
 *
 * As in QEMU, the data is loaded when the object is completed: read from
 * 'data' or 'file', then either decrypted (when 'keyid' names the secret
 * holding an AES-256 key; CBC mode with 'iv', PKCS#7-style padding) or,
 * when not encrypted, base64-decoded if 'format' says so.  Encrypted data
 * in base64 format is decoded before it is decrypted.  Every error message
 * and the order of the checks are qemu-storage-daemon 7.2's.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/keyctl.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <blockd/blockd.h>

#include "object-secret-schema.h"

#define SECRET_PARENT "secret_common"
#define AES256_KEY_LEN 32
#define AES_BLOCK_LEN 16

/* The characters QEMU accepts in base64 text (newlines included). */
#define BASE64_CHARS \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n"

typedef struct SecretObject {
    /* the properties as given */
    char *data;
    char *file;
    char *keyid;
    char *iv;
    bool base64;
    bool keyring;           /* secret_keyring: read key 'serial' */
    int32_t serial;

    /* the plain bytes, NUL-terminated (not counted); NULL until loaded */
    uint8_t *raw;
    size_t raw_len;
} SecretObject;

/* Overwrite and free a buffer that held secret bytes. */
static void wipe_free(void *buf, size_t len)
{
    if (buf) {
        explicit_bzero(buf, len);
        g_free(buf);
    }
}

/*
 * Decode base64 text of @len bytes (the bytes after it are not looked at)
 * with QEMU's checks: no NUL inside, only base64 characters.  The decoder
 * itself is glib's, as in QEMU, so that padding and trailing garbage are
 * treated alike.
 */
static uint8_t *base64_decode(const char *text, size_t len, size_t *out_len,
                              GError **errp)
{
    g_autofree char *copy = NULL;

    *out_len = 0;
    if (memchr(text, '\0', len)) {
        bd_error_setg(errp, "Base64 data contains embedded NUL characters");
        return NULL;
    }
    if (strspn(text, BASE64_CHARS) != len) {
        bd_error_setg(errp, "Base64 data contains invalid characters");
        return NULL;
    }
    copy = g_strndup(text, len);
    return g_base64_decode(copy, out_len);
}

/* secret_keyring: the payload of key 'serial' (keyctl read). */
static bool keyring_read(SecretObject *s, uint8_t **input, size_t *len,
                         GError **errp)
{
    long ret = syscall(SYS_keyctl, KEYCTL_READ, (long)s->serial, NULL, 0L);
    char *buf;

    if (ret >= 0) {
        buf = g_malloc0(ret + 1);
        ret = syscall(SYS_keyctl, KEYCTL_READ, (long)s->serial, buf, ret);
        if (ret >= 0) {
            *input = (uint8_t *)buf;
            *len = (size_t)ret;
            return true;
        }
        g_free(buf);
    }
    bd_error_setg(errp, "Unable to read serial key %08x: %s",
                  (uint32_t)s->serial, g_strerror(errno));
    return false;
}

/* Read the undecoded bytes from 'data' or 'file' (or the keyring). */
static bool secret_read_input(SecretObject *s, uint8_t **input, size_t *len,
                              GError **errp)
{
    g_autoptr(GError) err = NULL;
    char *contents;
    gsize length;

    if (s->keyring) {
        return keyring_read(s, input, len, errp);
    }
    if (s->file) {
        if (s->data) {
            bd_error_setg(errp, "'file' and 'data' are mutually exclusive");
            return false;
        }
        if (!g_file_get_contents(s->file, &contents, &length, &err)) {
            bd_error_setg(errp,
                          "Unable to read %s: %s", s->file, err->message);
            return false;
        }
        *input = (uint8_t *)contents;
        *len = length;
        return true;
    }
    if (s->data) {
        *len = strlen(s->data);
        *input = (uint8_t *)g_strdup(s->data);
        return true;
    }
    bd_error_setg(errp, "Either 'file' or 'data' must be provided");
    return false;
}

/* The bytes of the secret called @id, for use as a key. */
static bool secret_lookup(const char *id, uint8_t **data, size_t *len,
                          GError **errp)
{
    BdObject *obj = bd_object_find(id, NULL);
    const BdSecretInterface *ops;

    if (!obj) {
        bd_error_setg(errp, "No secret with id '%s'", id);
        return false;
    }
    ops = bd_object_get_interface(obj, BD_SECRET_INTERFACE);
    if (!ops || ops->struct_size <= offsetof(BdSecretInterface, get_data) ||
        !ops->get_data) {
        bd_error_setg(errp, "Object with id '%s' is not a secret", id);
        return false;
    }
    return ops->get_data(obj, data, len, errp);
}

/*
 * Decrypt @input (raw ciphertext, or base64 text of it) with the key of
 * secret 'keyid' and the IV 'iv'.  On success *@out holds the plaintext
 * without its padding, NUL-terminated.
 */
static bool secret_decrypt(SecretObject *s, const uint8_t *input,
                           size_t input_len, uint8_t **out, size_t *out_len,
                           GError **errp)
{
    uint8_t *key = NULL;
    size_t key_len = 0;
    g_autofree uint8_t *iv = NULL;
    size_t iv_len;
    uint8_t *decoded = NULL;
    size_t ct_len = 0;
    const uint8_t *ct;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    gnutls_cipher_hd_t cipher = NULL;
    gnutls_datum_t key_datum, iv_datum;
    bool ok = false;
    uint8_t pad;
    int rc;

    if (!secret_lookup(s->keyid, &key, &key_len, errp)) {
        return false;
    }
    if (key_len != AES256_KEY_LEN) {
        bd_error_setg(errp, "Key should be 32 bytes in length");
        goto out;
    }
    if (!s->iv) {
        bd_error_setg(errp, "IV is required to decrypt secret");
        goto out;
    }
    iv = base64_decode(s->iv, strlen(s->iv), &iv_len, errp);
    if (!iv) {
        goto out;
    }
    if (iv_len != AES_BLOCK_LEN) {
        bd_error_setg(errp, "IV should be 16 bytes in length not %zu", iv_len);
        goto out;
    }

    key_datum = (gnutls_datum_t){ .data = key, .size = key_len };
    iv_datum = (gnutls_datum_t){ .data = iv, .size = iv_len };
    rc = gnutls_cipher_init(&cipher, GNUTLS_CIPHER_AES_256_CBC, &key_datum,
                            &iv_datum);
    if (rc < 0) {
        bd_error_setg(errp,
                      "Cannot initialize cipher: %s", gnutls_strerror(rc));
        cipher = NULL;
        goto out;
    }

    if (s->base64) {
        decoded = base64_decode((const char *)input, input_len, &ct_len,
                                errp);
        if (!decoded) {
            goto out;
        }
        ct = decoded;
    } else {
        ct = input;
        ct_len = input_len;
    }
    if (ct_len % AES_BLOCK_LEN) {
        bd_error_setg(errp, "Length %zu must be a multiple of block size %d",
                      ct_len, AES_BLOCK_LEN);
        goto out;
    }
    plain = g_malloc0(ct_len + 1);
    if (ct_len) {
        rc = gnutls_cipher_decrypt2(cipher, ct, ct_len, plain, ct_len);
        if (rc < 0) {
            bd_error_setg(errp,
                          "Cannot decrypt data: %s", gnutls_strerror(rc));
            goto out;
        }
        /*
         * QEMU only checks that the count in the last byte is possible; it
         * does not look at the other padding bytes.  Empty ciphertext (no
         * padding byte at all) makes an empty secret.
         */
        pad = plain[ct_len - 1];
        if (pad > AES_BLOCK_LEN || pad > ct_len) {
            bd_error_setg(errp,
                          "Incorrect number of padding bytes (%d) found on "
                          "decrypted data", (int)pad);
            goto out;
        }
        plain_len = ct_len - pad;
        explicit_bzero(plain + plain_len, pad);
    }
    *out = plain;
    *out_len = plain_len;
    plain = NULL;
    ok = true;

out:
    if (cipher) {
        gnutls_cipher_deinit(cipher);
    }
    wipe_free(plain, ct_len + 1);
    if (decoded) {
        wipe_free(decoded, ct_len);
    }
    wipe_free(key, key_len);
    return ok;
}

static char *dup_member(JsonObject *props, const char *name)
{
    return g_strdup(json_object_get_string_member_with_default(props, name,
                                                               NULL));
}

static bool secret_create(BdObject *obj, JsonObject *props, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);

    /* QEMU 7.2 keeps 'loaded' in its schema but made the property
     * read-only, so any value is refused when it is set. */
    if (json_object_has_member(props, "loaded")) {
        bd_error_setg(errp, "Property 'secret.loaded' is not writable");
        return false;
    }
    s->data = dup_member(props, "data");
    s->file = dup_member(props, "file");
    s->keyid = dup_member(props, "keyid");
    s->iv = dup_member(props, "iv");
    s->base64 = !g_strcmp0(json_object_get_string_member_with_default(
                               props, "format", "raw"), "base64");
    return true;
}

/* QEMU's setter of 'serial' (at object-add and qom-set alike). */
static bool set_serial_value(SecretObject *s, int64_t v, GError **errp)
{
    if (v < G_MININT32 || v > G_MAXINT32) {
        bd_error_setg(errp, "Parameter 'serial' expects int32_t");
        return false;
    }
    if (v == 0) {
        bd_error_setg(errp, "'serial' should not be equal to 0");
        return false;
    }
    s->serial = (int32_t)v;
    return true;
}

static bool keyring_create(BdObject *obj, JsonObject *props, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);

    if (json_object_has_member(props, "loaded")) {
        bd_error_setg(errp,
                      "Property 'secret_keyring.loaded' is not writable");
        return false;
    }
    s->keyring = true;
    s->keyid = dup_member(props, "keyid");
    s->iv = dup_member(props, "iv");
    s->base64 = !g_strcmp0(json_object_get_string_member_with_default(
                               props, "format", "raw"), "base64");
    return set_serial_value(s, json_object_get_int_member_with_default(
                                   props, "serial", 0), errp);
}

/* Load the data now that other secrets can be found by id. */
static bool secret_complete(BdObject *obj, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);
    uint8_t *input = NULL, *output = NULL;
    size_t input_len = 0, output_len = 0;
    bool ok;

    if (!secret_read_input(s, &input, &input_len, errp)) {
        return false;
    }
    if (s->keyid) {
        ok = secret_decrypt(s, input, input_len, &output, &output_len, errp);
    } else if (s->base64) {
        output = base64_decode((const char *)input, input_len, &output_len,
                               errp);
        ok = output != NULL;
    } else {
        s->raw = input;
        s->raw_len = input_len;
        return true;
    }
    wipe_free(input, input_len);
    if (!ok) {
        return false;
    }
    s->raw = output;
    s->raw_len = output_len;
    return true;
}

static void secret_destroy(BdObject *obj)
{
    SecretObject *s = bd_object_get_opaque(obj);

    wipe_free(s->raw, s->raw_len);
    s->raw = NULL;
    if (s->data) {
        wipe_free(s->data, strlen(s->data));
    }
    g_free(s->file);
    g_free(s->keyid);
    g_free(s->iv);
}

static bool secret_get_data(BdObject *obj, uint8_t **data, size_t *len,
                            GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);
    uint8_t *copy;

    if (!s->raw) {
        /* only while its own data is being loaded, e.g. keyid=itself */
        bd_error_setg(errp, "Secret with id '%s' has no data",
                      bd_object_get_id(obj));
        return false;
    }
    copy = g_malloc(s->raw_len + 1);
    memcpy(copy, s->raw, s->raw_len);
    copy[s->raw_len] = '\0';
    *data = copy;
    *len = s->raw_len;
    return true;
}

static const BdSecretInterface secret_ops = {
    .struct_size = sizeof(BdSecretInterface),
    .get_data = secret_get_data,
};

static const BdObjectInterface secret_interfaces[] = {
    { .name = BD_SECRET_INTERFACE, .ops = &secret_ops },
    { .name = NULL },
};

/*
 * ---- QOM properties (qom-get, qom-set) ----
 *
 * As in QEMU, a property changed after the secret was loaded is only
 * stored: the secret keeps the bytes it loaded.  Unset strings read as
 * "".
 */

static JsonNode *str_node(const char *v)
{
    return json_node_init_string(json_node_alloc(), v ? v : "");
}

static bool set_str(char **field, bool wipe, JsonNode *value,
                    const char *name, GError **errp)
{
    const char *v;

    if (!bd_object_property_str(value, name, &v, errp)) {
        return false;
    }
    if (wipe && *field) {
        wipe_free(*field, strlen(*field));
    } else {
        g_free(*field);
    }
    *field = g_strdup(v);
    return true;
}

#define STR_PROP(NAME, FIELD, WIPE)                                       \
    static JsonNode *get_##FIELD(BdObject *obj, GError **errp)            \
    {                                                                     \
        SecretObject *s = bd_object_get_opaque(obj);                      \
        return str_node(s->FIELD);                                        \
    }                                                                     \
    static bool set_##FIELD(BdObject *obj, JsonNode *value,               \
                            GError **errp)                                \
    {                                                                     \
        SecretObject *s = bd_object_get_opaque(obj);                      \
        return set_str(&s->FIELD, WIPE, value, NAME, errp);               \
    }
STR_PROP("iv", iv, false)
STR_PROP("keyid", keyid, false)
STR_PROP("file", file, false)
STR_PROP("data", data, true)

static JsonNode *get_loaded(BdObject *obj, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);

    return json_node_init_boolean(json_node_alloc(), s->raw != NULL);
}

static JsonNode *get_format(BdObject *obj, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);

    return str_node(s->base64 ? "base64" : "raw");
}

static bool set_format(BdObject *obj, JsonNode *value, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);
    const char *v;

    if (!bd_object_property_str(value, "format", &v, errp)) {
        return false;
    }
    if (strcmp(v, "raw") && strcmp(v, "base64")) {
        bd_error_setg(errp, "Parameter 'format' does not accept value '%s'",
                      v);
        return false;
    }
    s->base64 = strcmp(v, "base64") == 0;
    return true;
}

/* in the order qemu-storage-daemon's qom-list shows them */
static const BdObjectProperty secret_properties[] = {
    { "iv", "string", get_iv, set_iv },
    { "keyid", "string", get_keyid, set_keyid },
    { "loaded", "bool", get_loaded, NULL },
    { "format", "QCryptoSecretFormat", get_format, set_format },
    { "file", "string", get_file, set_file },
    { "data", "string", get_data, set_data },
    { NULL },
};

static JsonNode *get_serial(BdObject *obj, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);

    return json_node_init_int(json_node_alloc(), s->serial);
}

/* stored only: the key was read when the object was made */
static bool set_serial(BdObject *obj, JsonNode *value, GError **errp)
{
    SecretObject *s = bd_object_get_opaque(obj);
    int64_t v;

    return bd_object_property_int(value, "serial", &v, errp) &&
           set_serial_value(s, v, errp);
}

static const BdObjectProperty keyring_properties[] = {
    { "iv", "string", get_iv, set_iv },
    { "keyid", "string", get_keyid, set_keyid },
    { "loaded", "bool", get_loaded, NULL },
    { "format", "QCryptoSecretFormat", get_format, set_format },
    { "serial", "int32_t", get_serial, set_serial },
    { NULL },
};

static const BdObjectType keyring_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "secret_keyring",
    .description = "a password or key read from the kernel's keyring",
    .parent = SECRET_PARENT,
    .instance_size = sizeof(SecretObject),
    .create = keyring_create,
    .complete = secret_complete,
    .destroy = secret_destroy,
    .interfaces = secret_interfaces,
    .properties = keyring_properties,
};

static const BdObjectType secret_type = {
    .struct_size = sizeof(BdObjectType),
    .name = "secret",
    .description = "a password or key, given inline or in a file",
    .parent = SECRET_PARENT,
    .instance_size = sizeof(SecretObject),
    .create = secret_create,
    .complete = secret_complete,
    .destroy = secret_destroy,
    .interfaces = secret_interfaces,
    .properties = secret_properties,
};

static bool object_secret_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_object_type(reg, &secret_type, errp) &&
           bd_registry_add_object_type(reg, &keyring_type, errp);
}

BD_PLUGIN(.name = "object-secret",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the secret and secret_keyring object types",
          .license = "GPL-2.0-or-later",
          .schema = object_secret_schema,
          .init = object_secret_init);
