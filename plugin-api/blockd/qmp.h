/*
 * blockd plugin ABI: QMP commands provided by plugins.
 */
#ifndef BLOCKD_QMP_H
#define BLOCKD_QMP_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The command may run out of band ('allow-oob' in the schema). */
#define BD_QMP_ALLOW_OOB (1u << 0)

/*
 * BdQmpHandler: runs a command in the main loop.
 * @args: the arguments, already validated against the command's schema
 *        (never NULL: an empty object when the client sent none).
 * @ret: set to the return value, or left NULL for commands that return
 *       nothing (the client then sees {}); the daemon takes ownership.
 * @errp: set on failure, in the BD_ERROR domain (see <blockd/error.h>).
 * Returns: true on success, false with @errp set on failure.
 */
typedef bool (*BdQmpHandler)(JsonObject *args, JsonNode **ret, GError **errp);

/*
 * BdQmpCommand (since ABI 1.0):
 * @struct_size: sizeof(BdQmpCommand).
 * @name: the command's name; it must be declared in the plugin's schema.
 * @handler: the implementation.
 * @flags: BD_QMP_* flags.
 */
struct BdQmpCommand {
    uint32_t struct_size;
    const char *name;
    BdQmpHandler handler;
    uint32_t flags;
};

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_QMP_H */
