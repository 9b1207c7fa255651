/*
 * A plugin as built against ABI 1.0: its descriptor says minor 0 and every
 * structure it passes is exactly as large as the 1.0 layout, whatever the
 * headers it is compiled with append later.  It must keep loading.
 */
#include <stddef.h>

#include <blockd/blockd.h>

/* The layouts below are those of ABI 1.x; a new major needs a new test. */
G_STATIC_ASSERT(BD_PLUGIN_ABI_MAJOR == 1);

#define ABI_1_0_SIZE(type, last_field) \
    (offsetof(type, last_field) + sizeof(((type *)0)->last_field))

static const BdBlockDriver older_driver = {
    .struct_size = ABI_1_0_SIZE(BdBlockDriver, description),
    .name = "older",
    .description = "a driver registered with the ABI 1.0 layout",
};

static bool older_hello(JsonObject *args, JsonNode **ret, GError **errp)
{
    return true;
}

static const BdQmpCommand older_command = {
    .struct_size = ABI_1_0_SIZE(BdQmpCommand, flags),
    .name = "x-older",
    .handler = older_hello,
};

static bool older_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &older_driver, errp) &&
           bd_registry_add_qmp_command(reg, &older_command, errp);
}

/* The embedded (canonical JSON) form blockd-qapi-embed.py writes. */
static const char older_schema[] =
    "{\"origin\":\"block-older-minor\",\"exprs\":["
    "{\"expr\":{\"command\":\"x-older\"},\"doc\":null,"
    "\"info\":\"block-older-minor.c\"}]}";

BD_PLUGIN_EXPORT const BdPluginDescriptor BD_PLUGIN_SYMBOL = {
    .magic = BD_PLUGIN_MAGIC,
    .abi_major = BD_PLUGIN_ABI_MAJOR,
    .abi_minor = 0,
    .struct_size = ABI_1_0_SIZE(BdPluginDescriptor, init),
    .name = "block-older-minor",
    .version = "1.0.0",
    .description = "built against plugin ABI 1.0",
    .license = "MIT",
    .schema = older_schema,
    .init = older_init,
};
