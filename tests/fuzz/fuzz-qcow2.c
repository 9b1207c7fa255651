/*
 * libFuzzer target: the qcow2 driver of the block-qcow2 plugin opening,
 * reading and writing mutated images.
 *
 * Nothing here re-implements the driver.  The first call brings the core
 * up in this process as the daemon's main() does (plugins discovered in
 * the build tree, schema, QMP commands).  Each input is then an image:
 * its bytes go into a memfd, which the real file driver opens through
 * /proc/self/fd/N under a qcow2 node added by the real QMP blockdev-add.
 * When the open succeeds, a BlockBackend on the node (the handle an
 * export uses) reads, queries block status, and, unless the node is
 * read-only, writes, writes zeroes, compressed writes, discards and
 * flushes at offsets that reach the header's tables: the first
 * clusters, cluster boundaries, the end of the image and places chosen
 * by the input; on a writable node, QMP then takes and deletes internal
 * snapshots and adds a persistent bitmap.  Then blockdev-del closes the
 * node (which stores the bitmaps and writes back the driver's caches).
 *
 * Input layout: byte 0 is the mode (bits below), bytes 1-8 choose extra
 * offsets, the rest is the image file.  The seed corpus (make-corpus.py)
 * holds small images made by qemu-img with every feature the driver
 * knows, so that mutations start from headers, L1/L2 entries, refcount
 * tables, extensions and compressed descriptors that are valid.
 *
 * Errors from the driver are expected (most mutated images are refused,
 * many requests fail with EIO); a crash, a sanitizer report, a leak or a
 * hang is what libFuzzer reports.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/blockd.h>
#include <blockd/block-backend.h>

#include "aio/aio-context.h"
#include "block/block-int.h"
#include "blockd-config.h"
#include "core-init.h"
#include "aio/coroutine.h"
#include "aio/main-loop.h"
#include "object/object.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-dispatch.h"
#include "util/trace-points.h"

/*
 * Byte 0 of an input:
 *   bit 0   open read-only (no writes)
 *   bit 1   give the node an external data file (a second, empty memfd),
 *           for images with the external data file bit
 *   bit 2   cache-clean-interval and a tiny L2 cache (l2-cache-size
 *           64 KiB), so that tables are evicted and read back
 *   bit 3   lazy-refcounts=on in the open options
 */
enum {
    MODE_READ_ONLY = 1u << 0,
    MODE_DATA_FILE = 1u << 1,
    MODE_SMALL_CACHE = 1u << 2,
    MODE_LAZY = 1u << 3,
};
#define HEADER_BYTES 9

/* Longest request, and how far into a huge image the I/O goes. */
#define MAX_REQ (256 * 1024)
#define MAX_READ_SPAN (4 * 1024 * 1024)

static BdAioContext *main_ctx;

static void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fuzz-qcow2: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* Run one QMP command through the daemon's dispatcher: true on success. */
static bool qmp(const char *json, bool must_succeed)
{
    BdQmpSession session = { .negotiated = true };
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonObject *rsp;
    bool ok;

    if (!json_parser_load_from_data(parser, json, -1, &err)) {
        die("bad QMP text %s: %s", json, err->message);
    }
    rsp = bd_qmp_dispatch(&session, json_parser_get_root(parser), NULL);
    if (!rsp) {
        die("%s: no reply", json);
    }
    ok = !json_object_has_member(rsp, "error");
    if (!ok && (must_succeed || g_getenv("FUZZ_QCOW2_VERBOSE"))) {
        g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(),
                                                         rsp);
        g_autofree char *text = json_to_string(node, false);

        if (must_succeed) {
            die("%s failed: %s", json, text);
        }
        /* to see why a seed does not open: FUZZ_QCOW2_VERBOSE=1 */
        fprintf(stderr, "fuzz-qcow2: %s\n", text);
    }
    json_object_unref(rsp);
    return ok;
}

static void tear_down(void)
{
    bd_shutdown_run_notifiers();
    bd_objects_delete_all();
    bd_plugins_reset();
}

static void set_up(void)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) dirs = NULL;
    const char *env = g_getenv("BLOCKD_PLUGIN_DIR");

    bd_trace_register_core();
    dirs = bd_plugin_dirs(env ? NULL : BLOCKD_BUILD_PLUGIN_DIR);
    bd_plugins_discover(dirs);
    if (!bd_core_init(&err)) {
        die("%s", err->message);
    }
    main_ctx = bd_aio_main_context();
    atexit(tear_down);
}

static int memfd_with(const char *name, const uint8_t *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    size_t done = 0;

    if (fd < 0) {
        die("memfd_create: %s", g_strerror(errno));
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);

        if (n < 0) {
            die("write to memfd: %s", g_strerror(errno));
        }
        done += n;
    }
    return fd;
}

/* --- the I/O ---------------------------------------------------------- */

typedef struct Io {
    BdBlockBackend *blk;
    bool writable;
    uint64_t picks;          /* bytes 1-8 of the input */
    bool done;
} Io;

static int64_t clamp_req(int64_t len, int64_t offset, int64_t bytes)
{
    if (offset >= len) {
        return 0;
    }
    return MIN(bytes, len - offset);
}

static void co_read(Io *io, uint8_t *buf, int64_t len, int64_t offset,
                    int64_t bytes)
{
    bytes = clamp_req(len, offset, bytes);
    if (bytes > 0) {
        bd_blk_co_pread(io->blk, offset, bytes, buf, 0);
    }
}

static void co_status(Io *io, int64_t len, int64_t offset, int64_t bytes)
{
    int64_t pnum, map;
    BdNode *file;

    bytes = clamp_req(len, offset, bytes);
    if (bytes > 0) {
        bd_blk_co_block_status(io->blk, true, offset, bytes, &pnum, &map,
                               &file);
        bd_blk_co_allocation_depth(io->blk, offset, bytes, &pnum);
    }
}

static void io_entry(void *opaque)
{
    Io *io = opaque;
    g_autofree uint8_t *buf = g_malloc0(MAX_REQ);
    int64_t len = bd_blk_co_getlength(io->blk);
    int64_t span = MIN(len, MAX_READ_SPAN);
    /* offsets the input picks: anywhere in the image, 512-aligned */
    int64_t pick1 = len > 0 ? (int64_t)((io->picks & 0xffffffff) %
                                        (uint64_t)len) & ~511 : 0;
    int64_t pick2 = len > 0 ? (int64_t)((io->picks >> 32) % (uint64_t)len)
                              : 0;

    if (len <= 0) {
        goto out;
    }
    /* the beginning, in pieces that cross cluster boundaries */
    for (int64_t off = 0; off < MIN(span, 1024 * 1024);
         off += 65536 + 4096) {
        co_read(io, buf, len, off, 65536 + 8192);
    }
    co_read(io, buf, len, MAX(0, len - 65536), 65536);
    co_read(io, buf, len, pick1, MAX_REQ);
    co_read(io, buf, len, pick2, 4096);
    co_status(io, len, 0, span);
    co_status(io, len, pick1, span);

    if (io->writable) {
        memset(buf, 0xa5, MAX_REQ);
        /* allocating writes, partial clusters, COW of what was there */
        bd_blk_co_pwrite(io->blk, 0, clamp_req(len, 0, 4096), buf, 0);
        bd_blk_co_pwrite(io->blk, 65536 + 512 < len ? 65536 + 512 : 0,
                         clamp_req(len, 65536 + 512, 3 * 4096), buf, 0);
        bd_blk_co_pwrite(io->blk, pick1, clamp_req(len, pick1, MAX_REQ),
                         buf, 0);
        bd_blk_co_pwrite(io->blk, pick2, clamp_req(len, pick2, 1000),
                         buf, 0);
        bd_blk_co_pwrite_zeroes(io->blk, 131072 < len ? 131072 : 0,
                                clamp_req(len, 131072, 65536), 0);
        bd_blk_co_pwrite_zeroes(io->blk, pick2,
                                clamp_req(len, pick2, 200000),
                                BD_REQ_MAY_UNMAP);
        bd_blk_co_pdiscard(io->blk, 196608 < len ? 196608 : 0,
                           clamp_req(len, 196608, 131072));
        bd_blk_co_pwrite(io->blk, MAX(0, len - 4096),
                         clamp_req(len, MAX(0, len - 4096), 4096), buf, 0);
        /*
         * compressed writes of whole clusters (the image's size is one
         * of these; the others are refused): into free clusters, over
         * allocated ones (refused), and the short last one
         */
        for (int64_t cs = 512; cs <= 65536; cs *= 8) {
            int64_t off = pick2 / cs * cs;

            bd_blk_co_pwrite(io->blk, off, clamp_req(len, off, cs), buf,
                             BD_REQ_WRITE_COMPRESSED);
            bd_blk_co_pwrite(io->blk, (len - 1) / cs * cs,
                             clamp_req(len, (len - 1) / cs * cs, cs), buf,
                             BD_REQ_WRITE_COMPRESSED);
        }
        bd_blk_co_flush(io->blk);
        /* read back what was written */
        co_read(io, buf, len, 0, MAX_REQ);
        co_read(io, buf, len, pick1, MAX_REQ);
        co_status(io, len, 0, span);
    }
out:
    io->done = true;
    bd_aio_notify(main_ctx);
}

static void run_io(BdNode *node, bool writable, uint64_t picks)
{
    g_autoptr(GError) err = NULL;
    uint64_t perm = BD_PERM_CONSISTENT_READ |
                    (writable ? BD_PERM_WRITE : 0);
    BdBlockBackend *blk = bd_blk_new(NULL, perm, BD_PERM_ALL);
    Io io = { .blk = blk, .writable = writable, .picks = picks };

    if (!bd_blk_insert(blk, node, &err)) {
        /* a node that cannot take the permissions: nothing to do */
        bd_blk_unref(blk);
        return;
    }
    bd_aio_co_enter(main_ctx, bd_coroutine_create(io_entry, &io));
    while (!io.done) {
        bd_aio_poll(main_ctx, true);
    }
    bd_blk_unref(blk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool initialised;
    g_autofree char *add = NULL;
    g_autofree char *data_file = NULL;
    uint8_t mode;
    uint64_t picks = 0;
    int fd, data_fd = -1;
    BdNode *node;

    if (size < HEADER_BYTES) {
        return 0;
    }
    if (!initialised) {
        set_up();
        initialised = true;
    }
    mode = data[0];
    memcpy(&picks, data + 1, 8);
    fd = memfd_with("image", data + HEADER_BYTES, size - HEADER_BYTES);
    if (mode & MODE_DATA_FILE) {
        static const uint8_t none[1];

        data_fd = memfd_with("data", none, 0);
        data_file = g_strdup_printf(
            ", \"data-file\": {\"driver\": \"file\", "
            "\"filename\": \"/proc/self/fd/%d\"}", data_fd);
    }

    /*
     * "backing": null: a mutated header names any file as its backing
     * file; the fuzzer must not open files of the machine.
     */
    add = g_strdup_printf(
        "{\"execute\": \"blockdev-add\", \"arguments\": {"
        "\"driver\": \"qcow2\", \"node-name\": \"fq\", "
        "\"read-only\": %s, \"backing\": null, "
        "\"discard\": \"unmap\"%s%s%s, "
        "\"file\": {\"driver\": \"file\", "
        "\"filename\": \"/proc/self/fd/%d\"}}}",
        mode & MODE_READ_ONLY ? "true" : "false",
        mode & MODE_SMALL_CACHE ?
            ", \"l2-cache-size\": 65536, \"cache-clean-interval\": 1" : "",
        mode & MODE_LAZY ? ", \"lazy-refcounts\": true" : "",
        data_file ? data_file : "", fd);
    if (qmp(add, false)) {
        node = bd_node_find("fq");
        if (!node) {
            die("blockdev-add succeeded but node 'fq' is not there");
        }
        run_io(node, !(mode & MODE_READ_ONLY), picks);
        if (!(mode & MODE_READ_ONLY)) {
            /*
             * internal snapshots made and deleted (the image's first
             * one too), and a persistent bitmap that blockdev-del stores
             */
            qmp("{\"execute\": \"blockdev-snapshot-internal-sync\", "
                "\"arguments\": {\"device\": \"fq\", \"name\": \"fz\"}}",
                false);
            qmp("{\"execute\": \"blockdev-snapshot-delete-internal-sync\", "
                "\"arguments\": {\"device\": \"fq\", \"id\": \"1\"}}",
                false);
            qmp("{\"execute\": \"blockdev-snapshot-delete-internal-sync\", "
                "\"arguments\": {\"device\": \"fq\", \"name\": \"fz\"}}",
                false);
            qmp("{\"execute\": \"block-dirty-bitmap-add\", \"arguments\": "
                "{\"node\": \"fq\", \"name\": \"fb\", "
                "\"persistent\": true, \"granularity\": 512}}", false);
        }
        qmp("{\"execute\": \"blockdev-del\", \"arguments\": {"
            "\"node-name\": \"fq\"}}", true);
    }
    if (bd_node_find("fq")) {
        die("node 'fq' is still there after blockdev-del");
    }
    close(fd);
    if (data_fd >= 0) {
        close(data_fd);
    }
    return 0;
}
