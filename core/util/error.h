/*
 * The core's side of blockd's error domain (<blockd/error.h> is what
 * plugins see).
 */
#ifndef BLOCKD_CORE_UTIL_ERROR_H
#define BLOCKD_CORE_UTIL_ERROR_H

#include <blockd/error.h>

/*
 * The QMP name of @cls ("GenericError", ...), or "GenericError" for a value
 * outside the enum.  Any thread; the string is static.  Not exported:
 * only the QMP dispatcher turns an error into a reply.
 */
const char *bd_error_class_name(BdErrorClass cls);

#endif /* BLOCKD_CORE_UTIL_ERROR_H */
