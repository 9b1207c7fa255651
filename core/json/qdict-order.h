/*
 * The order in which QEMU iterates a JSON object's members.
 *
 * QEMU keeps objects in a QDict: 512 hash buckets, iterated bucket by
 * bucket, the newest entry first within a bucket.  Whatever a client can
 * see of that order (the member order of replies, which unexpected member
 * an error names first) follows from it, so blockd computes it in one
 * place.  Any thread.
 */
#ifndef BLOCKD_CORE_QDICT_ORDER_H
#define BLOCKD_CORE_QDICT_ORDER_H

#include <json-glib/json-glib.h>

/*
 * The member names of @obj (owned by @obj) in the order QEMU's QDict would
 * iterate them, @obj's own order being the insertion order.  The caller
 * frees the list with g_list_free().
 */
GList *bd_qdict_member_order(JsonObject *obj);

#endif /* BLOCKD_CORE_QDICT_ORDER_H */
