/*
 * blockd's GError domain and the QMP names of its codes.
 */
#include <blockd/error.h>

#include "util/error.h"

G_DEFINE_QUARK(blockd-error-quark, bd_error)

const char *bd_error_class_name(BdErrorClass cls)
{
    switch (cls) {
    case BD_ERROR_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case BD_ERROR_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case BD_ERROR_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case BD_ERROR_KVM_MISSING_CAP:
        return "KVMMissingCap";
    case BD_ERROR_GENERIC:
    default:
        return "GenericError";
    }
}
