/*
 * Who asked for the work being done: the daemon itself (its command line,
 * start-up) or a monitor client.  Some answers depend on it (a client
 * cannot name a file descriptor it never passed); the QMP dispatcher sets
 * it around each handler, and lower layers read it here instead of
 * reaching up into the dispatcher.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_UTIL_ORIGIN_H
#define BLOCKD_CORE_UTIL_ORIGIN_H

typedef enum BdRequestOrigin {
    BD_ORIGIN_DAEMON,       /* the default: command line, start-up */
    BD_ORIGIN_CLIENT,       /* a monitor client's QMP command */
} BdRequestOrigin;

/* The origin of the work running now. */
BdRequestOrigin bd_request_origin(void);

/*
 * Run what follows on behalf of @origin; returns the previous origin, to
 * give back to bd_request_origin_set() when done (requests nest: a
 * command may run another).
 */
BdRequestOrigin bd_request_origin_set(BdRequestOrigin origin);

#endif /* BLOCKD_CORE_UTIL_ORIGIN_H */
