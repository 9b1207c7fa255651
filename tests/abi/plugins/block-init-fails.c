/* A plugin whose init() fails with a message. */
#include <blockd/blockd.h>

static bool init_fails_init(BdRegistry *reg, GError **errp)
{
    bd_error_setg(errp, "the frobnicator of %s is missing",
                  bd_registry_plugin_name(reg));
    return false;
}

BD_PLUGIN_DEFINE("block-init-fails", "1.0", "init always fails", "MIT", NULL,
                 init_fails_init);
