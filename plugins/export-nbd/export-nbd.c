/*
 * export-nbd: the plugin: the 'nbd' export type and the nbd-server-*
 * QMP commands.  The protocol is in nbd-proto.c, connections in
 * nbd-conn.c (with nbd-negotiate.c and nbd-requests.c), the listening
 * server in nbd-server.c.
 */
#include <string.h>

#include "nbd-int.h"
#include "nbd-proto.h"

#include "export-nbd-schema.h"

/*
 * Find the bitmaps of the export's @bitmaps option (QEMU 7.2's checks,
 * in its order) into e->bitmaps and hold them: busy and referenced.
 */
static bool export_bitmaps(NbdExport *e, BdExport *exp, JsonObject *opts,
                           bool ro, GError **errp)
{
    JsonArray *list = json_object_has_member(opts, "bitmaps") ?
        json_object_get_array_member(opts, "bitmaps") : NULL;
    unsigned n = list ? json_array_get_length(list) : 0;
    g_autofree BdDirtyBitmap **bms = g_new0(BdDirtyBitmap *, n + 1);

    for (unsigned i = 0; i < n; i++) {
        JsonNode *el = json_array_get_element(list, i);
        BdDirtyBitmap *bm;

        if (JSON_NODE_HOLDS_VALUE(el)) {
            const char *name = json_node_get_string(el);
            BdNode *node = NULL;

            /* a name alone is looked for down filters and backing files */
            bm = bd_dirty_bitmap_find_in_chain(
                bd_blk_get_node(bd_export_get_blk(exp)), name, &node);
            if (!bm) {
                bd_error_setg(errp, "Bitmap '%s' is not found", name);
                return false;
            }
            /* its bits could change under a client that cannot write */
            if (ro && !bd_node_is_read_only(node) &&
                bd_dirty_bitmap_enabled(bm)) {
                bd_error_setg(errp, "Enabled bitmap '%s' incompatible with "
                              "readonly export", name);
                return false;
            }
        } else {
            JsonObject *o = json_node_get_object(el);

            bm = bd_dirty_bitmap_lookup(
                json_object_get_string_member(o, "node"),
                json_object_get_string_member(o, "name"), NULL, errp);
            if (!bm) {
                return false;
            }
        }
        if (!bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_ALLOW_RO,
                                   errp)) {
            return false;
        }
        bms[i] = bm;
    }
    for (unsigned i = 0; i < n; i++) {
        bd_dirty_bitmap_ref(bms[i]);
        bd_dirty_bitmap_set_busy(bms[i], true);
    }
    e->bitmaps = g_steal_pointer(&bms);
    e->nr_bitmaps = n;
    return true;
}

static bool nbd_export_create(BdExport *exp, JsonObject *opts,
                              GError **errp)
{
    NbdExport *e = bd_export_get_opaque(exp);
    BdBlockBackend *blk = bd_export_get_blk(exp);
    const char *name = json_object_get_string_member_with_default(
        opts, "name", bd_export_get_node_name(exp));
    const char *desc = json_object_get_string_member_with_default(
        opts, "description", NULL);
    uint64_t perm, shared;
    int64_t size;
    bool ro;

    if (!nbd_server_is_running()) {
        bd_error_setg(errp, "NBD server not running");
        return false;
    }
    if (strlen(name) > NBD_MAX_STRING_SIZE) {
        bd_error_setg(errp, "export name '%s' too long", name);
        return false;
    }
    if (desc && strlen(desc) > NBD_MAX_STRING_SIZE) {
        bd_error_setg(errp, "description '%s' too long", desc);
        return false;
    }
    if (nbd_export_lookup(name)) {
        bd_error_setg(errp, "NBD server already has export named '%s'", name);
        return false;
    }
    size = bd_blk_getlength(blk);
    if (size < 0) {
        bd_error_setg(errp, "Failed to determine the NBD export's length: %s",
                      g_strerror((int)-size));
        return false;
    }
    /* the size clients see must not change under them */
    bd_blk_get_perm(blk, &perm, &shared);
    if (!bd_blk_set_perm(blk, perm, shared & ~BD_PERM_RESIZE, errp)) {
        return false;
    }

    ro = !bd_export_is_writable(exp);
    if (!export_bitmaps(e, exp, opts, ro, errp)) {
        return false;
    }
    e->exp = exp;
    e->name = g_strdup(name);
    e->description = g_strdup(desc);
    e->size = size;
    e->allocation_depth = json_object_get_boolean_member_with_default(
        opts, "allocation-depth", false);
    /*
     * Multi-conn is safe for writable exports too, and qemu-storage-daemon
     * 7.2 offers it there: every connection of an export goes through the
     * same BlockBackend, so a read sees what any connection wrote, and a
     * FLUSH on one connection flushes the node, covering the writes every
     * connection completed.  A single allowed connection makes it moot.
     */
    e->flags = nbd_export_flags(ro, nbd_server_max_connections() != 1);
    nbd_server_add_export(e);
    return true;
}

static void nbd_export_request_shutdown(BdExport *exp)
{
    NbdExport *e = bd_export_get_opaque(exp);

    nbd_server_close_clients(e);
}

static void nbd_export_destroy(BdExport *exp)
{
    NbdExport *e = bd_export_get_opaque(exp);

    nbd_server_remove_export(e);
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        bd_dirty_bitmap_set_busy(e->bitmaps[i], false);
        bd_dirty_bitmap_unref(e->bitmaps[i]);
    }
    g_free(e->bitmaps);
    g_free(e->name);
    g_free(e->description);
}

static const BdExportType nbd_export_type = {
    .struct_size = sizeof(BdExportType),
    .name = "nbd",
    .description = "NBD server export",
    .instance_size = sizeof(NbdExport),
    .supports_multithread = true,
    .create = nbd_export_create,
    .request_shutdown = nbd_export_request_shutdown,
    .destroy = nbd_export_destroy,
};

static const BdQmpCommand nbd_commands[] = {
    { sizeof(BdQmpCommand), "nbd-server-start", nbd_qmp_server_start, 0 },
    { sizeof(BdQmpCommand), "nbd-server-stop", nbd_qmp_server_stop, 0 },
    { sizeof(BdQmpCommand), "nbd-server-add", nbd_qmp_server_add, 0 },
    { sizeof(BdQmpCommand), "nbd-server-remove", nbd_qmp_server_remove, 0 },
};

static bool export_nbd_init(BdRegistry *reg, GError **errp)
{
    if (!bd_registry_add_export_type(reg, &nbd_export_type, errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(nbd_commands); i++) {
        if (!bd_registry_add_qmp_command(reg, &nbd_commands[i], errp)) {
            return false;
        }
    }
    return true;
}

BD_PLUGIN(.name = "export-nbd",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "NBD server: the nbd export type and nbd-server-* "
                         "commands",
          .license = "GPL-2.0-or-later",
          .schema = export_nbd_schema,
          .init = export_nbd_init);
