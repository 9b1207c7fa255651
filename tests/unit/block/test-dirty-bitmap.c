/*
 * Dirty bitmaps: the bits (granularity edges, set/reset, searches,
 * extents, merge, resize, the hashed layout, concurrent marking) and the
 * request layer's marking of a node's bitmaps.
 */
#include <string.h>

#include <glib.h>

#include <blockd/error.h>

#include "block/block-int.h"
#include "block/dirty-bitmap.h"

#define KiB 1024
#define MiB (1024 * 1024)

static BdAioContext *main_ctx;

static char *sha_of_words(const unsigned long *w, size_t n)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256,
                                       (const guchar *)w,
                                       n * sizeof(unsigned long));
}

static void test_granularity_edges(void)
{
    BdDirtyBitmap *small = bd_dirty_bitmap_new(10 * MiB, 512, "s");
    BdDirtyBitmap *big = bd_dirty_bitmap_new(10 * MiB, UINT32_C(1) << 31,
                                             "b");
    BdDirtyBitmap *empty = bd_dirty_bitmap_new(0, 65536, NULL);
    bool dirty;

    g_assert_cmpuint(bd_dirty_bitmap_granularity(small), ==, 512);
    g_assert_cmpuint(bd_dirty_bitmap_granularity(big), ==, 1u << 31);
    g_assert_null(bd_dirty_bitmap_name(empty));

    /* one byte dirties a whole granule */
    bd_dirty_bitmap_set(small, 1000, 1);
    g_assert_cmpuint(bd_dirty_bitmap_count(small), ==, 512);
    bd_dirty_bitmap_set(big, 10 * MiB - 1, 1);
    g_assert_cmpuint(bd_dirty_bitmap_count(big), ==, UINT64_C(1) << 31);
    g_assert_cmpint(bd_dirty_bitmap_extent(big, 0, INT64_MAX, &dirty), ==,
                    10 * MiB);
    g_assert_true(dirty);

    /* past the end: nothing */
    bd_dirty_bitmap_set(small, 10 * MiB, 4096);
    bd_dirty_bitmap_set(empty, 0, 4096);
    g_assert_cmpuint(bd_dirty_bitmap_count(small), ==, 512);
    g_assert_cmpuint(bd_dirty_bitmap_count(empty), ==, 0);
    g_assert_cmpint(bd_dirty_bitmap_extent(empty, 0, 100, &dirty), ==, 0);

    bd_dirty_bitmap_unref(small);
    bd_dirty_bitmap_unref(big);
    bd_dirty_bitmap_unref(empty);
}

static void test_set_reset_next(void)
{
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(1 * MiB + 100, 4096, "b");
    bool dirty;

    g_assert_cmpint(bd_dirty_bitmap_next(bm, true, 0, INT64_MAX), ==, -1);
    g_assert_cmpint(bd_dirty_bitmap_next(bm, false, 5, 10), ==, 5);

    bd_dirty_bitmap_set(bm, 4096 * 63 + 1, 4096 * 2);   /* 63..65 */
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 3 * 4096);
    g_assert_cmpint(bd_dirty_bitmap_next(bm, true, 0, INT64_MAX), ==,
                    4096 * 63);
    /* never before the start */
    g_assert_cmpint(bd_dirty_bitmap_next(bm, true, 4096 * 64 + 7, 1), ==,
                    4096 * 64 + 7);
    g_assert_cmpint(bd_dirty_bitmap_next(bm, false, 4096 * 63, INT64_MAX),
                    ==, 4096 * 66);
    g_assert_cmpint(bd_dirty_bitmap_next(bm, true, 0, 4096 * 63), ==, -1);

    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 0, INT64_MAX, &dirty), ==,
                    4096 * 63);
    g_assert_false(dirty);
    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 4096 * 63 + 5, INT64_MAX,
                                           &dirty), ==, 3 * 4096 - 5);
    g_assert_true(dirty);
    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 4096 * 63, 100, &dirty), ==,
                    100);
    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 4096 * 66, INT64_MAX,
                                           &dirty), ==,
                    1 * MiB + 100 - 4096 * 66);
    g_assert_false(dirty);

    /* reset clears whole granules only */
    bd_dirty_bitmap_reset(bm, 4096 * 63 + 1, 4096);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 3 * 4096);
    bd_dirty_bitmap_reset(bm, 4096 * 64, 4096);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 2 * 4096);
    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 4096 * 63, INT64_MAX,
                                           &dirty), ==, 4096);

    /* the partial last granule can be reset up to the end */
    bd_dirty_bitmap_set(bm, 1 * MiB + 50, 1);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 3 * 4096);
    bd_dirty_bitmap_reset(bm, 1 * MiB, 100);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 2 * 4096);

    bd_dirty_bitmap_clear(bm);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 0);
    bd_dirty_bitmap_unref(bm);
}

static void test_sha256_layout(void)
{
    /* 160 granules: three longs on LP64 hosts, bit i of word i / 64 */
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(10 * MiB, 65536, "b");
    BdDirtyBitmap *one = bd_dirty_bitmap_new(512, 512, "one");
    unsigned long words[(160 + 63) / 64] = { 0 };
    size_t nwords = (160 + sizeof(unsigned long) * 8 - 1) /
                    (sizeof(unsigned long) * 8);
    g_autofree char *want0 = sha_of_words(words, nwords);
    g_autofree char *got0 = bd_dirty_bitmap_sha256(bm);
    g_autofree char *want1 = NULL, *got1 = NULL, *want2 = NULL;
    g_autofree char *got2 = NULL;

    g_assert_cmpstr(got0, ==, want0);
    /* QEMU's hash of an empty 10 MiB bitmap at 64 KiB on x86-64 */
    if (sizeof(unsigned long) == 8) {
        g_assert_cmpstr(got0, ==, "9d908ecfb6b256def8b49a7c504e6c889c4b0e41"
                                  "fe6ce3e01863dd7b61a20aa0");
    }
    bd_dirty_bitmap_set(bm, 0, 1);
    bd_dirty_bitmap_set(bm, 70 * 65536, 65536);
    bd_dirty_bitmap_set(bm, 159 * 65536, 1);
    words[0] = 1;
    words[70 / (sizeof(unsigned long) * 8)] |=
        1UL << (70 % (sizeof(unsigned long) * 8));
    words[159 / (sizeof(unsigned long) * 8)] |=
        1UL << (159 % (sizeof(unsigned long) * 8));
    want1 = sha_of_words(words, nwords);
    got1 = bd_dirty_bitmap_sha256(bm);
    g_assert_cmpstr(got1, ==, want1);

    /* a single granule is hashed as one whole long */
    memset(words, 0, sizeof(words));
    want2 = sha_of_words(words, 1);
    got2 = bd_dirty_bitmap_sha256(one);
    g_assert_cmpstr(got2, ==, want2);
    bd_dirty_bitmap_unref(bm);
    bd_dirty_bitmap_unref(one);
}

static void test_merge(void)
{
    g_autoptr(GError) err = NULL;
    BdDirtyBitmap *a = bd_dirty_bitmap_new(4 * MiB, 65536, "a");
    BdDirtyBitmap *b = bd_dirty_bitmap_new(4 * MiB, 512, "b");
    BdDirtyBitmap *c = bd_dirty_bitmap_new(4 * MiB, 65536, "c");
    BdDirtyBitmap *other = bd_dirty_bitmap_new(1 * MiB, 65536, "o");
    bool dirty;

    bd_dirty_bitmap_set(b, 100000, 10);       /* granule 65536.. of a */
    bd_dirty_bitmap_set(c, 3 * MiB, 1);
    g_assert_true(bd_dirty_bitmap_merge(a, b, &err));
    g_assert_true(bd_dirty_bitmap_merge(a, c, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(bd_dirty_bitmap_count(a), ==, 2 * 65536);
    g_assert_cmpint(bd_dirty_bitmap_next(a, true, 0, INT64_MAX), ==, 65536);
    g_assert_cmpint(bd_dirty_bitmap_extent(a, 3 * MiB, INT64_MAX, &dirty),
                    ==, 65536);
    g_assert_true(dirty);
    /* the other way: fine granules all dirty */
    g_assert_true(bd_dirty_bitmap_merge(b, c, &err));
    g_assert_cmpuint(bd_dirty_bitmap_count(b), ==, 512 + 65536);
    g_assert_true(bd_dirty_bitmap_merge(a, a, &err));

    g_assert_false(bd_dirty_bitmap_merge(a, other, &err));
    g_assert_cmpstr(err->message, ==,
                    "Bitmaps are of different sizes (destination size is "
                    "4194304, source size is 1048576) and can't be merged");
    g_clear_error(&err);
    bd_dirty_bitmap_set_busy(c, true);
    g_assert_false(bd_dirty_bitmap_merge(a, c, &err));
    g_assert_cmpstr(err->message, ==,
                    "Bitmap 'c' is currently in use by another operation "
                    "and cannot be used");
    bd_dirty_bitmap_set_busy(c, false);

    bd_dirty_bitmap_unref(a);
    bd_dirty_bitmap_unref(b);
    bd_dirty_bitmap_unref(c);
    bd_dirty_bitmap_unref(other);
}

static void test_truncate(void)
{
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(1 * MiB, 512, "t");
    bool dirty;

    bd_dirty_bitmap_set(bm, 0, 1 * MiB);
    bd_dirty_bitmap_truncate(bm, 1000);        /* two granules remain */
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 1024);
    g_assert_cmpint(bd_dirty_bitmap_size(bm), ==, 1000);
    bd_dirty_bitmap_truncate(bm, 2 * MiB);     /* grows clean */
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 1024);
    g_assert_cmpint(bd_dirty_bitmap_extent(bm, 1024, INT64_MAX, &dirty), ==,
                    2 * MiB - 1024);
    g_assert_false(dirty);
    bd_dirty_bitmap_truncate(bm, 0);
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 0);
    bd_dirty_bitmap_unref(bm);
}

typedef struct Marker {
    BdDirtyBitmap *bm;
    int index;
} Marker;

static gpointer mark_thread(gpointer opaque)
{
    Marker *m = opaque;

    /* interleaved granules: neighbours share words with other threads */
    for (int i = m->index; i < 64 * 1024; i += 4) {
        bd_dirty_bitmap_set(m->bm, (int64_t)i * 512, 1);
    }
    return NULL;
}

static void test_concurrent_marking(void)
{
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(32 * MiB, 512, "c");
    Marker m[4];
    GThread *t[4];

    for (int i = 0; i < 4; i++) {
        m[i] = (Marker){ bm, i };
        t[i] = g_thread_new("marker", mark_thread, &m[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_thread_join(t[i]);
    }
    g_assert_cmpuint(bd_dirty_bitmap_count(bm), ==, 32 * MiB);
    bd_dirty_bitmap_unref(bm);
}

/* --- marking by the request layer --------------------------------------- */

#define MEM_SIZE (1 * MiB)

static bool mem_open(BdNode *node, JsonObject *opts, unsigned flags,
                     GError **errp)
{
    *(uint8_t **)bd_node_get_opaque(node) = g_malloc0(MEM_SIZE);
    return true;
}

static void mem_close(BdNode *node)
{
    g_free(*(uint8_t **)bd_node_get_opaque(node));
}

static bool mem_limits(BdNode *node, BdBlockLimits *bl, GError **errp)
{
    bl->request_alignment = 4096;
    return true;
}

static int64_t mem_getlength(BdNode *node)
{
    return MEM_SIZE;
}

static int mem_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    uint8_t *data = *(uint8_t **)bd_node_get_opaque(node);

    bd_iovec_from_buf(qiov, 0, data + offset, bytes);
    return 0;
}

static int mem_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    uint8_t *data = *(uint8_t **)bd_node_get_opaque(node);

    bd_iovec_to_buf(qiov, 0, data + offset, bytes);
    return 0;
}

static const BdBlockDriver mem_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "test-mem",
    .description = "memory for tests",
    .instance_size = sizeof(uint8_t *),
    .flags = BD_DRIVER_PROTOCOL,
    .open = mem_open,
    .close = mem_close,
    .refresh_limits = mem_limits,
    .co_getlength = mem_getlength,
    .co_preadv = mem_preadv,
    .co_pwritev = mem_pwritev,
};

typedef struct Io {
    BdBlockBackend *blk;
    bool zeroes;
    int64_t offset, bytes;
    int ret;
    bool done;
} Io;

static void io_co(void *opaque)
{
    Io *io = opaque;
    g_autofree uint8_t *buf = g_malloc0(io->bytes);

    io->ret = io->zeroes
        ? bd_blk_co_pwrite_zeroes(io->blk, io->offset, io->bytes, 0)
        : bd_blk_co_pwrite(io->blk, io->offset, io->bytes, buf, 0);
    io->done = true;
}

static void io_run(BdBlockBackend *blk, bool zeroes, int64_t offset,
                   int64_t bytes)
{
    Io io = { blk, zeroes, offset, bytes, -1, false };

    bd_aio_coroutine_enter(main_ctx, bd_coroutine_create(io_co, &io));
    while (!io.done) {
        bd_aio_poll(main_ctx, true);
    }
    g_assert_cmpint(io.ret, ==, 0);
}

static void test_request_layer_marks(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) opts = json_object_new();
    BdDirtyBitmap *fine, *off, *kept;
    BdBlockBackend *blk;
    BdNode *node;
    bool dirty;

    node = bd_node_open_driver(&mem_driver, "mem0", opts, &err);
    g_assert_no_error(err);
    fine = bd_dirty_bitmap_create(node, 512, "fine", &err);
    off = bd_dirty_bitmap_create(node, 512, "off", &err);
    g_assert_no_error(err);
    g_assert_null(bd_dirty_bitmap_create(node, 512, "fine", &err));
    g_assert_cmpstr(err->message, ==, "Bitmap already exists: fine");
    g_clear_error(&err);
    bd_dirty_bitmap_set_enabled(off, false);
    g_assert_true(bd_dirty_bitmap_find(node, "fine") == fine);
    g_assert_true(bd_dirty_bitmap_find_in_chain(node, "off", NULL) == off);
    g_assert_null(bd_dirty_bitmap_find(node, "zz"));

    blk = bd_blk_new(NULL, BD_PERM_CONSISTENT_READ | BD_PERM_WRITE,
                     BD_PERM_ALL);
    g_assert_true(bd_blk_insert(blk, node, &err));

    /* an unaligned write marks the padded range, as QEMU's */
    io_run(blk, false, 5000, 1);
    g_assert_cmpint(bd_dirty_bitmap_extent(fine, 0, INT64_MAX, &dirty), ==,
                    4096);
    g_assert_false(dirty);
    g_assert_cmpint(bd_dirty_bitmap_extent(fine, 4096, INT64_MAX, &dirty),
                    ==, 4096);
    g_assert_true(dirty);
    io_run(blk, true, 64 * KiB, 8 * KiB);
    g_assert_cmpuint(bd_dirty_bitmap_count(fine), ==, 12 * KiB);
    g_assert_cmpuint(bd_dirty_bitmap_count(off), ==, 0);

    /* a bitmap someone holds outlives its node */
    kept = fine;
    bd_dirty_bitmap_ref(kept);
    bd_blk_unref(blk);
    g_assert_true(bd_node_delete_by_monitor("mem0", &err));
    g_assert_no_error(err);
    g_assert_cmpuint(bd_dirty_bitmap_count(kept), ==, 12 * KiB);
    bd_dirty_bitmap_unref(kept);
}

/*
 * QEMU's serialized layout (what qcow2 stores): bit k of byte j is
 * granule 8j + k; sizes round up to 8 bytes; parts start at 64 granules.
 */
static void test_serialize(void)
{
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(1000 * 512 + 100, 512, "s");
    BdDirtyBitmap *back = bd_dirty_bitmap_new(1000 * 512 + 100, 512, "b");
    g_autofree char *sha = NULL;
    g_autofree char *sha_back = NULL;
    uint8_t buf[256];

    /* 1001 granules: 126 bytes, rounded up to 128 */
    g_assert_cmpuint(bd_dirty_bitmap_serialization_size(bm, 0, INT64_MAX),
                     ==, 128);
    g_assert_cmpuint(bd_dirty_bitmap_serialization_size(bm, 64 * 512,
                                                         64 * 512), ==, 8);
    bd_dirty_bitmap_set(bm, 0, 1);              /* granule 0 */
    bd_dirty_bitmap_set(bm, 9 * 512, 512);      /* granule 9 */
    bd_dirty_bitmap_set(bm, 1000 * 512, 1);     /* the last, partial */
    memset(buf, 0xee, sizeof(buf));
    bd_dirty_bitmap_serialize_part(bm, buf, 0, INT64_MAX);
    g_assert_cmphex(buf[0], ==, 0x01);
    g_assert_cmphex(buf[1], ==, 0x02);
    g_assert_cmphex(buf[125], ==, 0x01);        /* granule 1000 = 125*8 */
    g_assert_cmphex(buf[126], ==, 0);
    g_assert_cmphex(buf[127], ==, 0);
    g_assert_cmphex(buf[128], ==, 0xee);        /* nothing past the size */

    /* a part at granule 64 holds granules 64.. */
    bd_dirty_bitmap_set(bm, 65 * 512, 512);
    bd_dirty_bitmap_serialize_part(bm, buf, 64 * 512, 64 * 512);
    g_assert_cmphex(buf[0], ==, 0x02);

    /* and back: the same bits, the same count and hash */
    bd_dirty_bitmap_serialize_part(bm, buf, 0, INT64_MAX);
    bd_dirty_bitmap_set(back, 500 * 512, 512);  /* replaced */
    bd_dirty_bitmap_deserialize_part(back, buf, 0, INT64_MAX);
    g_assert_cmpuint(bd_dirty_bitmap_count(back), ==,
                     bd_dirty_bitmap_count(bm));
    sha = bd_dirty_bitmap_sha256(bm);
    sha_back = bd_dirty_bitmap_sha256(back);
    g_assert_cmpstr(sha, ==, sha_back);

    /* stray bits past the end in the buffer are not taken */
    buf[126] = 0xff;
    buf[125] = 0xff;
    bd_dirty_bitmap_clear(back);
    bd_dirty_bitmap_deserialize_part(back, buf, 0, INT64_MAX);
    g_assert_cmpint(bd_dirty_bitmap_next(back, true, 992 * 512, INT64_MAX),
                    ==, 1000 * 512);
    g_assert_cmpuint(bd_dirty_bitmap_count(back), ==, 4 * 512);

    bd_dirty_bitmap_deserialize_ones(back, 0, INT64_MAX);
    g_assert_cmpuint(bd_dirty_bitmap_count(back), ==, 1001 * 512);
    bd_dirty_bitmap_unref(bm);
    bd_dirty_bitmap_unref(back);
}

/* The persistence flags and the checks QEMU makes with them. */
static void test_persistent_checks(void)
{
    BdDirtyBitmap *bm = bd_dirty_bitmap_new(MiB, 65536, "p");
    GError *err = NULL;

    g_assert_false(bd_dirty_bitmap_persistent(bm));
    g_assert_true(bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_DEFAULT,
                                        NULL));
    bd_dirty_bitmap_set_readonly(bm, true);
    g_assert_false(bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_DEFAULT,
                                         &err));
    g_assert_cmpstr(err->message, ==,
                    "Bitmap 'p' is readonly and cannot be modified");
    g_clear_error(&err);
    g_assert_true(bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_ALLOW_RO,
                                        NULL));
    bd_dirty_bitmap_set_readonly(bm, false);
    bd_dirty_bitmap_set_inconsistent(bm);
    g_assert_true(bd_dirty_bitmap_persistent(bm));
    g_assert_false(bd_dirty_bitmap_enabled(bm));
    g_assert_false(bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_ALLOW_RO,
                                         &err));
    g_assert_cmpstr(err->message, ==,
                    "Bitmap 'p' is inconsistent and cannot be used");
    g_clear_error(&err);
    g_assert_true(bd_dirty_bitmap_check(bm, BD_DIRTY_BITMAP_CHECK_BUSY,
                                        NULL));
    bd_dirty_bitmap_unref(bm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    g_test_add_func("/dirty-bitmap/granularity-edges",
                    test_granularity_edges);
    g_test_add_func("/dirty-bitmap/set-reset-next", test_set_reset_next);
    g_test_add_func("/dirty-bitmap/sha256-layout", test_sha256_layout);
    g_test_add_func("/dirty-bitmap/merge", test_merge);
    g_test_add_func("/dirty-bitmap/serialize", test_serialize);
    g_test_add_func("/dirty-bitmap/persistent-checks",
                    test_persistent_checks);
    g_test_add_func("/dirty-bitmap/truncate", test_truncate);
    g_test_add_func("/dirty-bitmap/concurrent-marking",
                    test_concurrent_marking);
    g_test_add_func("/dirty-bitmap/request-layer", test_request_layer_marks);
    return g_test_run();
}
