/*
 * blockd plugin ABI: errors.
 *
 * Plugins report failures with GError in the BD_ERROR domain; the code is
 * the QMP error class the client will see, the message its "desc".  The
 * daemon never prints a plugin's error only to stderr: it reaches whoever
 * asked (the QMP client or the command line).
 */
#ifndef BLOCKD_ERROR_H
#define BLOCKD_ERROR_H

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* QMP's error classes, in the order QEMU's schema declares them. */
typedef enum BdErrorClass {
    BD_ERROR_GENERIC = 0,          /* "GenericError" */
    BD_ERROR_COMMAND_NOT_FOUND,    /* "CommandNotFound" */
    BD_ERROR_DEVICE_NOT_ACTIVE,    /* "DeviceNotActive" */
    BD_ERROR_DEVICE_NOT_FOUND,     /* "DeviceNotFound" */
    BD_ERROR_KVM_MISSING_CAP,      /* "KVMMissingCap" */
} BdErrorClass;

#define BD_ERROR (bd_error_quark())

/* The GQuark of blockd's error domain.  Any thread. */
GQuark bd_error_quark(void);

/*
 * Set *@errp (when @errp is not NULL) to a GenericError whose message is
 * @fmt formatted as printf() does: the error nearly every failure
 * reports.  A macro over g_set_error(), so it costs no exported symbol.
 */
#define bd_error_setg(errp, ...) \
    g_set_error((errp), BD_ERROR, BD_ERROR_GENERIC, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_ERROR_H */
