/*
 * blockd plugin ABI: user-creatable object types.
 *
 * The callbacks that create and run a user-creatable object type are added to this structure
 * by later ABI minors; a field added later reads as NULL/0 for a plugin
 * built before it.
 */
#ifndef BLOCKD_OBJECT_H
#define BLOCKD_OBJECT_H

#include <stdint.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BdObjectType (since ABI 1.0):
 * @struct_size: sizeof(BdObjectType).
 * @name: the value of ObjectOptions' 'qom-type', e.g. "iothread".
 * @description: one line for listings and help.
 */
struct BdObjectType {
    uint32_t struct_size;
    const char *name;
    const char *description;
};

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_OBJECT_H */
