/*
 * blockd plugin ABI: the "throttle-group" object interface.
 *
 * A throttle group (the throttle-group object type) holds I/O limits that
 * several block nodes share: the throttle filter driver passes each
 * request through its group before forwarding it.  The type offers the
 * BdObjectInterface named BD_THROTTLE_GROUP_INTERFACE whose @ops point to
 * a BdThrottleGroupInterface.
 */
#ifndef BLOCKD_THROTTLE_H
#define BLOCKD_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/coroutine.h>
#include <blockd/object.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BD_THROTTLE_GROUP_INTERFACE "throttle-group"

/*
 * BdThrottleGroupInterface (since ABI 1.0):
 * @struct_size: sizeof(BdThrottleGroupInterface) as the provider was
 *        built; a caller reads a field only when it lies within this size.
 * @join: a node starts using the group; while any node uses it the group
 *        cannot be deleted.  Main thread.
 * @leave: the node that joined stops using the group.  Main thread.
 * @co_intercept: coroutine_fn: wait until the group's limits allow a
 *        request of @bytes bytes (a write when @is_write) and count it;
 *        stop waiting as soon as *@bypass (read atomically) is non-zero
 *        (the node is being drained).  Any thread; waiting requests of a
 *        group pass in turn.
 */
typedef struct BdThrottleGroupInterface {
    uint32_t struct_size;
    void (*join)(BdObject *obj);
    void (*leave)(BdObject *obj);
    bd_coroutine_fn
    void (*co_intercept)(BdObject *obj, int64_t bytes, bool is_write,
                         const int *bypass);
} BdThrottleGroupInterface;

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_THROTTLE_H */
