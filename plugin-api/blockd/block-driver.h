/*
 * blockd plugin ABI: block drivers (formats, protocols and filters).
 *
 * A plugin registers a BdBlockDriver for each value of BlockdevDriver it
 * implements (a plugin may register several, e.g. null-co and null-aio).
 * The I/O callbacks are added to this structure by later ABI minors; a
 * field added later reads as NULL/0 for a plugin built before it.
 */
#ifndef BLOCKD_BLOCK_DRIVER_H
#define BLOCKD_BLOCK_DRIVER_H

#include <stdint.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BdBlockDriver (since ABI 1.0):
 * @struct_size: sizeof(BdBlockDriver).
 * @name: the driver name as BlockdevOptions' 'driver' spells it.
 * @description: one line for listings and help.
 */
struct BdBlockDriver {
    uint32_t struct_size;
    const char *name;
    const char *description;
};

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_BLOCK_DRIVER_H */
