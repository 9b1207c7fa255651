/*
 * blockd plugin ABI: the "secret" object interface.
 *
 * Secret objects hold passwords and keys (for instance the password of an
 * encrypted TLS private key) so that they never appear on a command line
 * in the clear.  A type offers them as the BdObjectInterface named
 * BD_SECRET_INTERFACE whose @ops point to a BdSecretInterface, and names
 * "secret_common" as its parent type (QEMU's name, with an underscore) so
 * that bd_object_find(id, "secret_common") finds its objects.
 */
#ifndef BLOCKD_SECRET_H
#define BLOCKD_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/object.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BD_SECRET_INTERFACE "secret"

/*
 * BdSecretInterface (since ABI 1.0):
 * @struct_size: sizeof(BdSecretInterface) as the provider was built; a
 *        caller reads a field only when it lies within this size.
 * @get_data: the secret's plain bytes (decoded and decrypted) in a new
 *        buffer of *@len bytes followed by a NUL that *@len does not
 *        count; the caller wipes and g_free()s it.  False with @errp set
 *        when the data cannot be had.  Main thread.
 */
typedef struct BdSecretInterface {
    uint32_t struct_size;
    bool (*get_data)(BdObject *obj, uint8_t **data, size_t *len,
                     GError **errp);
} BdSecretInterface;

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_SECRET_H */
