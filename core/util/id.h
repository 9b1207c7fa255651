/*
 * Identifiers as QEMU checks and makes them: the ids of objects, exports,
 * chardevs and QemuOpts groups, and node names.
 */
#ifndef BLOCKD_CORE_UTIL_ID_H
#define BLOCKD_CORE_UTIL_ID_H

#include <stdbool.h>
#include <stdint.h>

/*
 * QEMU's id_wellformed(): whether @id is a letter, then letters, digits,
 * '-', '.' and '_'.
 */
bool bd_id_wellformed(const char *id);

/*
 * QEMU's id_generate(): "#" @prefix, the next value of *@counter, two
 * random digits; never well-formed, so never a name a user gave.  The
 * caller retries if the name is taken.  Newly allocated.
 */
char *bd_id_generate(const char *prefix, uint64_t *counter);

#endif /* BLOCKD_CORE_UTIL_ID_H */
