/*
 * A test export type, "testexp", for blockd's integration tests.
 *
 * It goes through the export ABI the way a real export does: create()
 * does I/O through the BlockBackend (in a coroutine of the export's
 * context), fake clients take references (testexp-connect), and
 * request_shutdown() drops them, unless keep-clients asks it to leave them
 * for testexp-disconnect, so that tests see an export shutting down.
 */
#include <errno.h>
#include <string.h>

#include <blockd/blockd.h>

#include "export-testexp-schema.h"

typedef struct Testexp {
    int64_t length;
    int first_byte;
    int write_errno;
    int clients;
    bool keep_clients;
} Testexp;

typedef struct Probe {
    BdBlockBackend *blk;
    bool write;
    uint8_t pattern;
    Testexp *t;
    int ret;
    gint done;          /* set by the probe, maybe in another thread */
} Probe;

/* The I/O of create(): length, a write when asked, the first byte. */
static void probe_co(void *opaque)
{
    Probe *p = opaque;
    uint8_t buf[512];
    int ret;

    p->t->length = bd_blk_co_getlength(p->blk);
    if (p->t->length < 0) {
        p->ret = (int)p->t->length;
        goto out;
    }
    memset(buf, p->pattern, sizeof(buf));
    if (p->write) {
        ret = bd_blk_co_pwrite(p->blk, 0, sizeof(buf), buf, 0);
        if (ret < 0) {
            p->ret = ret;
            goto out;
        }
        ret = bd_blk_co_flush(p->blk);
        if (ret < 0) {
            p->ret = ret;
            goto out;
        }
    } else if (!bd_blk_is_writable(p->blk)) {
        /* a read-only export's backend must refuse writes */
        p->t->write_errno = -bd_blk_co_pwrite(p->blk, 0, sizeof(buf), buf,
                                              0);
    }
    memset(buf, 0xaa, sizeof(buf));
    ret = bd_blk_co_pread(p->blk, 0, sizeof(buf), buf, 0);
    if (ret < 0) {
        p->ret = ret;
        goto out;
    }
    if (p->write && buf[0] != p->pattern) {
        p->ret = -EIO;
        goto out;
    }
    p->t->first_byte = buf[0];
out:
    /* the probe may run in an IOThread: wake the waiting main loop */
    g_atomic_int_set(&p->done, true);
    g_main_context_wakeup(NULL);
}

static bool testexp_create(BdExport *exp, JsonObject *opts, GError **errp)
{
    Testexp *t = bd_export_get_opaque(exp);
    BdAioContext *ctx = bd_export_get_aio_context(exp);
    Probe p = {
        .blk = bd_export_get_blk(exp),
        .write = json_object_has_member(opts, "pattern"),
        .t = t,
    };

    if (json_object_get_boolean_member_with_default(opts, "fail-create",
                                                    false)) {
        bd_error_setg(errp, "testexp '%s' refuses to be created",
                      bd_export_get_id(exp));
        return false;
    }
    if (p.write && !bd_export_is_writable(exp)) {
        bd_error_setg(errp, "'pattern' needs writable=on");
        return false;
    }
    if (p.write) {
        p.pattern = (uint8_t)json_object_get_int_member(opts, "pattern");
    }
    t->keep_clients = json_object_get_boolean_member_with_default(
        opts, "keep-clients", false);

    bd_aio_co_enter(ctx, bd_coroutine_create(probe_co, &p));
    while (!g_atomic_int_get(&p.done)) {
        g_main_context_iteration(NULL, TRUE);
    }
    if (p.ret < 0) {
        bd_error_setg(errp, "testexp I/O failed: %s", g_strerror(-p.ret));
        return false;
    }
    return true;
}

static void testexp_request_shutdown(BdExport *exp)
{
    Testexp *t = bd_export_get_opaque(exp);

    if (t->keep_clients) {
        return;
    }
    while (t->clients > 0) {
        t->clients--;
        bd_export_unref(exp);
    }
}

static void testexp_destroy(BdExport *exp)
{
    g_assert(((Testexp *)bd_export_get_opaque(exp))->clients == 0);
}

static const BdExportType testexp_type = {
    .struct_size = sizeof(BdExportType),
    .name = "testexp",
    .description = "an export for blockd's tests",
    .instance_size = sizeof(Testexp),
    .create = testexp_create,
    .request_shutdown = testexp_request_shutdown,
    .destroy = testexp_destroy,
};

static BdExport *find_testexp(JsonObject *args, GError **errp)
{
    const char *id = json_object_get_string_member(args, "id");
    BdExport *exp = bd_export_find(id);

    if (!exp || strcmp(bd_export_get_type_name(exp), "testexp") != 0) {
        bd_error_setg(errp, "no testexp export '%s'", id);
        return NULL;
    }
    return exp;
}

static bool qmp_testexp_connect(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    BdExport *exp = find_testexp(args, errp);

    if (!exp) {
        return false;
    }
    if (bd_export_is_shutting_down(exp)) {
        bd_error_setg(errp, "testexp '%s' is shutting down",
                      bd_export_get_id(exp));
        return false;
    }
    bd_export_ref(exp);
    ((Testexp *)bd_export_get_opaque(exp))->clients++;
    return true;
}

static bool qmp_testexp_disconnect(JsonObject *args, JsonNode **ret,
                                   GError **errp)
{
    BdExport *exp = find_testexp(args, errp);
    Testexp *t;

    if (!exp) {
        return false;
    }
    t = bd_export_get_opaque(exp);
    if (t->clients == 0) {
        bd_error_setg(errp,
                      "testexp '%s' has no client", bd_export_get_id(exp));
        return false;
    }
    t->clients--;
    bd_export_unref(exp);
    return true;
}

static bool qmp_testexp_info(JsonObject *args, JsonNode **ret,
                             GError **errp)
{
    BdExport *exp = find_testexp(args, errp);
    Testexp *t;
    JsonObject *info;

    if (!exp) {
        return false;
    }
    t = bd_export_get_opaque(exp);
    info = json_object_new();
    json_object_set_int_member(info, "length", t->length);
    json_object_set_int_member(info, "first-byte", t->first_byte);
    json_object_set_int_member(info, "write-errno", t->write_errno);
    json_object_set_int_member(info, "clients", t->clients);
    *ret = json_node_init_object(json_node_alloc(), info);
    json_object_unref(info);
    return true;
}

static const BdQmpCommand testexp_commands[] = {
    { sizeof(BdQmpCommand), "testexp-connect", qmp_testexp_connect, 0 },
    { sizeof(BdQmpCommand), "testexp-disconnect", qmp_testexp_disconnect,
      0 },
    { sizeof(BdQmpCommand), "testexp-info", qmp_testexp_info, 0 },
};

static bool testexp_init(BdRegistry *reg, GError **errp)
{
    if (!bd_registry_add_export_type(reg, &testexp_type, errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(testexp_commands); i++) {
        if (!bd_registry_add_qmp_command(reg, &testexp_commands[i], errp)) {
            return false;
        }
    }
    return true;
}

BD_PLUGIN_DEFINE("export-testexp", "0.1.0",
                 "a test export type (testexp)", "GPL-2.0-or-later",
                 export_testexp_schema, testexp_init);
