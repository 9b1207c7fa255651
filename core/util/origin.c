/*
 * The origin of the running request (see origin.h).
 */
#include "util/origin.h"

static BdRequestOrigin current = BD_ORIGIN_DAEMON;

BdRequestOrigin bd_request_origin(void)
{
    return current;
}

BdRequestOrigin bd_request_origin_set(BdRequestOrigin origin)
{
    BdRequestOrigin old = current;

    current = origin;
    return old;
}
