/*
 * blockd plugin ABI: block job types.
 *
 * The callbacks that create and run a block job type are added to this structure
 * by later ABI minors; a field added later reads as NULL/0 for a plugin
 * built before it.
 */
#ifndef BLOCKD_JOB_H
#define BLOCKD_JOB_H

#include <stdint.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BdJobType (since ABI 1.0):
 * @struct_size: sizeof(BdJobType).
 * @name: the value of JobType, e.g. "mirror".
 * @description: one line for listings and help.
 */
struct BdJobType {
    uint32_t struct_size;
    const char *name;
    const char *description;
};

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_JOB_H */
