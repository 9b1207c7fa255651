/*
 * block-hello: a third-party plugin as its author would write it, built
 * outside blockd's tree with nothing but `pkg-config --cflags blockd-plugin`
 * and the installed tools (the schema embedder and the manifest generator).
 *
 * It provides the block driver "hello" and the QMP command "x-hello".  When
 * $BLOCKD_HELLO_MARKER is set, loading it creates that file, so a test can
 * tell whether the daemon loaded its code.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <blockd/blockd.h>

#include "block-hello-schema.h"

static void __attribute__((constructor)) hello_mark_loaded(void)
{
    const char *marker = getenv("BLOCKD_HELLO_MARKER");

    if (marker) {
        int fd = open(marker, O_WRONLY | O_CREAT, 0600);
        if (fd >= 0) {
            close(fd);
        }
    }
}

static const BdBlockDriver hello_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "hello",
    .description = "an out-of-tree example driver",
};

static bool hello_command(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonObject *obj = json_object_new();

    (void)args;
    (void)errp;
    json_object_set_string_member(obj, "greeting", "hello");
    *ret = json_node_init_object(json_node_alloc(), obj);
    json_object_unref(obj);
    return true;
}

static const BdQmpCommand hello_qmp_command = {
    .struct_size = sizeof(BdQmpCommand),
    .name = "x-hello",
    .handler = hello_command,
};

static bool hello_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &hello_driver, errp) &&
           bd_registry_add_qmp_command(reg, &hello_qmp_command, errp);
}

BD_PLUGIN(.name = "block-hello", .version = "2.3.4",
          .description = "an example plugin built out of tree",
          .license = "MIT", .schema = block_hello_schema,
          .init = hello_init);
