/*
 * blockd plugin ABI: export types.
 *
 * The callbacks that create and run a export type are added to this structure
 * by later ABI minors; a field added later reads as NULL/0 for a plugin
 * built before it.
 */
#ifndef BLOCKD_EXPORT_H
#define BLOCKD_EXPORT_H

#include <stdint.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BdExportType (since ABI 1.0):
 * @struct_size: sizeof(BdExportType).
 * @name: the value of BlockExportOptions' 'type', e.g. "nbd".
 * @description: one line for listings and help.
 */
struct BdExportType {
    uint32_t struct_size;
    const char *name;
    const char *description;
};

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_EXPORT_H */
