/*
 * blockd plugin ABI: the "authz" object interface.
 *
 * Authorization objects (authz-simple, authz-list, authz-list-file, or a
 * third party's) decide whether an identity, such as the distinguished
 * name of a TLS client's certificate, may use a service.  A type offers
 * it as the BdObjectInterface named BD_AUTHZ_INTERFACE whose @ops point
 * to a BdAuthzInterface, and names "authz" as its parent type so that
 * bd_object_find(id, "authz") finds its objects.
 */
#ifndef BLOCKD_AUTHZ_H
#define BLOCKD_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/object.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BD_AUTHZ_INTERFACE "authz"

/*
 * BdAuthzInterface (since ABI 1.0):
 * @struct_size: sizeof(BdAuthzInterface) as the provider was built; a
 *        caller reads a field only when it lies within this size.
 * @is_allowed: whether @identity may proceed.  False with @errp unset
 *        means denied; false with @errp set means the decision could not
 *        be made (the caller denies too, and reports @errp).  Main thread.
 */
typedef struct BdAuthzInterface {
    uint32_t struct_size;
    bool (*is_allowed)(BdObject *obj, const char *identity, GError **errp);
} BdAuthzInterface;

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_AUTHZ_H */
