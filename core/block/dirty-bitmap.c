/*
 * Dirty bitmaps: one bit per granule, in a flat array of unsigned longs.
 *
 * The array is the same as the last level of QEMU's HBitmap (bit i of
 * long i / BITS_PER_LONG is granule i, at least one long), so that
 * x-debug-block-dirty-bitmap-sha256 hashes the same bytes as QEMU does.
 * Searches scan a word at a time; a 1 TiB node at the default 64 KiB
 * granularity is 256 Ki words.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <blockd/error.h>

#include "block/dirty-bitmap.h"
#include "util/main-thread.h"

#define BPL (sizeof(unsigned long) * CHAR_BIT)

struct BdDirtyBitmap {
    gint refcnt;
    GMutex lock;                /* bits, size, granules, dirty, disabled */
    BdNode *node;               /* NULL once released; main loop */
    char *name;
    unsigned shift;             /* log2(granularity) */
    int64_t size;               /* bytes covered */
    uint64_t granules;
    size_t nwords;
    unsigned long *words;
    uint64_t dirty;             /* dirty granules */
    bool disabled;
    bool busy;                  /* main loop */
    bool persistent;            /* kept in the node's image; main loop */
    bool inconsistent;          /* found in use in the image; main loop */
    bool readonly;              /* from a read-only image; main loop */
};

static size_t words_for(uint64_t granules)
{
    return MAX((granules + BPL - 1) / BPL, 1);
}

static uint64_t granules_for(int64_t size, unsigned shift)
{
    return ((uint64_t)size + (UINT64_C(1) << shift) - 1) >> shift;
}

BdDirtyBitmap *bd_dirty_bitmap_new(int64_t size, uint32_t granularity,
                                   const char *name)
{
    BdDirtyBitmap *bm = g_new0(BdDirtyBitmap, 1);

    g_assert(granularity >= 512 && !(granularity & (granularity - 1)));
    g_assert(size >= 0);
    bm->refcnt = 1;
    g_mutex_init(&bm->lock);
    bm->name = g_strdup(name);
    bm->shift = (unsigned)__builtin_ctz(granularity);
    bm->size = size;
    bm->granules = granules_for(size, bm->shift);
    bm->nwords = words_for(bm->granules);
    bm->words = g_new0(unsigned long, bm->nwords);
    return bm;
}

void bd_dirty_bitmap_ref(BdDirtyBitmap *bm)
{
    g_atomic_int_inc(&bm->refcnt);
}

void bd_dirty_bitmap_unref(BdDirtyBitmap *bm)
{
    if (bm && g_atomic_int_dec_and_test(&bm->refcnt)) {
        g_mutex_clear(&bm->lock);
        g_free(bm->words);
        g_free(bm->name);
        g_free(bm);
    }
}

/* ---- bits ---- */

/* Set or clear granules [start, end); returns how many bits changed. */
static uint64_t change_bits(unsigned long *w, uint64_t start, uint64_t end,
                            bool set)
{
    uint64_t changed = 0;

    while (start < end) {
        size_t i = start / BPL;
        unsigned b = start % BPL;
        uint64_t n = MIN(end - start, (uint64_t)(BPL - b));
        unsigned long mask = n == BPL ? ~0UL : ((1UL << n) - 1) << b;
        unsigned long old = w[i];

        w[i] = set ? old | mask : old & ~mask;
        changed += (uint64_t)__builtin_popcountl(old ^ w[i]);
        start += n;
    }
    return changed;
}

/* The first granule in [g, end) whose bit is @set, or @end. */
static uint64_t find_bit(const BdDirtyBitmap *bm, uint64_t g, uint64_t end,
                         bool set)
{
    while (g < end) {
        size_t i = g / BPL;
        unsigned long w = set ? bm->words[i] : ~bm->words[i];

        w &= ~0UL << (g % BPL);
        if (w) {
            return MIN((uint64_t)i * BPL + (uint64_t)__builtin_ctzl(w), end);
        }
        g = (uint64_t)(i + 1) * BPL;
    }
    return end;
}

static bool test_bit(const BdDirtyBitmap *bm, uint64_t g)
{
    return (bm->words[g / BPL] >> (g % BPL)) & 1;
}

/* Mark the granules touching [offset, offset + bytes); lock held. */
static void set_locked(BdDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    int64_t end;

    if (offset < 0 || bytes <= 0 || offset >= bm->size) {
        return;
    }
    end = bytes > bm->size - offset ? bm->size : offset + bytes;
    bm->dirty += change_bits(bm->words, (uint64_t)offset >> bm->shift,
                             granules_for(end, bm->shift), true);
}

void bd_dirty_bitmap_set(BdDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    g_mutex_lock(&bm->lock);
    set_locked(bm, offset, bytes);
    g_mutex_unlock(&bm->lock);
}

void bd_dirty_bitmap_reset(BdDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    uint64_t first, last;
    int64_t end;

    g_mutex_lock(&bm->lock);
    if (offset >= 0 && bytes > 0 && offset < bm->size) {
        end = bytes > bm->size - offset ? bm->size : offset + bytes;
        /* only whole granules, or the partial one at the very end */
        first = granules_for(offset, bm->shift);
        last = end == bm->size ? bm->granules
                               : (uint64_t)end >> bm->shift;
        if (first < last) {
            bm->dirty -= change_bits(bm->words, first, last, false);
        }
    }
    g_mutex_unlock(&bm->lock);
}

void bd_dirty_bitmap_clear(BdDirtyBitmap *bm)
{
    g_mutex_lock(&bm->lock);
    memset(bm->words, 0, bm->nwords * sizeof(unsigned long));
    bm->dirty = 0;
    g_mutex_unlock(&bm->lock);
}

void bd_dirty_bitmap_truncate(BdDirtyBitmap *bm, int64_t size)
{
    uint64_t granules = granules_for(size, bm->shift);
    size_t nwords = words_for(granules);

    g_mutex_lock(&bm->lock);
    if (granules < bm->granules) {
        bm->dirty -= change_bits(bm->words, granules, bm->granules, false);
    }
    if (nwords != bm->nwords) {
        bm->words = g_renew(unsigned long, bm->words, nwords);
        if (nwords > bm->nwords) {
            memset(bm->words + bm->nwords, 0,
                   (nwords - bm->nwords) * sizeof(unsigned long));
        }
        bm->nwords = nwords;
    }
    bm->granules = granules;
    bm->size = size;
    g_mutex_unlock(&bm->lock);
}

int64_t bd_dirty_bitmap_next(BdDirtyBitmap *bm, bool dirty, int64_t offset,
                             int64_t bytes)
{
    int64_t ret = -1;

    g_mutex_lock(&bm->lock);
    if (offset >= 0 && bytes > 0 && offset < bm->size) {
        int64_t end = bytes > bm->size - offset ? bm->size : offset + bytes;
        uint64_t gend = granules_for(end, bm->shift);
        uint64_t g = find_bit(bm, (uint64_t)offset >> bm->shift, gend, dirty);

        if (g < gend) {
            ret = MAX((int64_t)(g << bm->shift), offset);
        }
    }
    g_mutex_unlock(&bm->lock);
    return ret;
}

int64_t bd_dirty_bitmap_extent(BdDirtyBitmap *bm, int64_t offset,
                               int64_t bytes, bool *dirty)
{
    int64_t ret = 0;

    *dirty = false;
    g_mutex_lock(&bm->lock);
    if (offset >= 0 && bytes > 0 && offset < bm->size) {
        int64_t end = bytes > bm->size - offset ? bm->size : offset + bytes;
        uint64_t g = (uint64_t)offset >> bm->shift;
        bool state = test_bit(bm, g);
        uint64_t next = find_bit(bm, g + 1, granules_for(end, bm->shift),
                                 !state);

        *dirty = state;
        ret = MIN((int64_t)(next << bm->shift), end) - offset;
    }
    g_mutex_unlock(&bm->lock);
    return ret;
}

uint64_t bd_dirty_bitmap_count(BdDirtyBitmap *bm)
{
    uint64_t n;

    g_mutex_lock(&bm->lock);
    n = bm->dirty << bm->shift;
    g_mutex_unlock(&bm->lock);
    return n;
}

char *bd_dirty_bitmap_sha256(BdDirtyBitmap *bm)
{
    char *hex;

    g_mutex_lock(&bm->lock);
    hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256,
                                      (const guchar *)bm->words,
                                      bm->nwords * sizeof(unsigned long));
    g_mutex_unlock(&bm->lock);
    return hex;
}

/* ---- properties ---- */

const char *bd_dirty_bitmap_name(const BdDirtyBitmap *bm)
{
    return bm->name;
}

uint32_t bd_dirty_bitmap_granularity(const BdDirtyBitmap *bm)
{
    return UINT32_C(1) << bm->shift;
}

int64_t bd_dirty_bitmap_size(BdDirtyBitmap *bm)
{
    int64_t size;

    g_mutex_lock(&bm->lock);
    size = bm->size;
    g_mutex_unlock(&bm->lock);
    return size;
}

bool bd_dirty_bitmap_enabled(BdDirtyBitmap *bm)
{
    return !__atomic_load_n(&bm->disabled, __ATOMIC_RELAXED);
}

void bd_dirty_bitmap_set_enabled(BdDirtyBitmap *bm, bool enabled)
{
    g_mutex_lock(&bm->lock);
    __atomic_store_n(&bm->disabled, !enabled, __ATOMIC_RELAXED);
    g_mutex_unlock(&bm->lock);
}

bool bd_dirty_bitmap_busy(const BdDirtyBitmap *bm)
{
    BD_ASSERT_MAIN_LOOP();
    return bm->busy;
}

void bd_dirty_bitmap_set_busy(BdDirtyBitmap *bm, bool busy)
{
    bm->busy = busy;
}

bool bd_dirty_bitmap_check(const BdDirtyBitmap *bm, unsigned flags,
                           GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    if ((flags & BD_DIRTY_BITMAP_CHECK_BUSY) && bm->busy) {
        bd_error_setg(errp,
                      "Bitmap '%s' is currently in use by another operation "
                      "and cannot be used", bm->name ? bm->name : "");
        return false;
    }
    if ((flags & BD_DIRTY_BITMAP_CHECK_RO) && bm->readonly) {
        bd_error_setg(errp, "Bitmap '%s' is readonly and cannot be modified",
                      bm->name ? bm->name : "");
        return false;
    }
    if ((flags & BD_DIRTY_BITMAP_CHECK_INCONSISTENT) && bm->inconsistent) {
        bd_error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used",
                      bm->name ? bm->name : "");
        return false;
    }
    return true;
}

bool bd_dirty_bitmap_merge(BdDirtyBitmap *dst, BdDirtyBitmap *src,
                           GError **errp)
{
    BdDirtyBitmap *first = dst < src ? dst : src;
    BdDirtyBitmap *second = dst < src ? src : dst;
    bool ok = false;

    g_mutex_lock(&first->lock);
    if (second != first) {
        g_mutex_lock(&second->lock);
    }
    if (!bd_dirty_bitmap_check(dst, BD_DIRTY_BITMAP_CHECK_DEFAULT, errp) ||
        !bd_dirty_bitmap_check(src, BD_DIRTY_BITMAP_CHECK_ALLOW_RO, errp)) {
        goto out;
    }
    if (dst->size != src->size) {
        bd_error_setg(errp,
                      "Bitmaps are of different sizes (destination size is %"
                      G_GINT64_FORMAT ", source size is %" G_GINT64_FORMAT
                      ") and can't be merged", dst->size, src->size);
        goto out;
    }
    ok = true;
    if (dst == src) {
        goto out;
    }
    if (dst->shift == src->shift) {
        dst->dirty = 0;
        for (size_t i = 0; i < dst->nwords; i++) {
            dst->words[i] |= src->words[i];
            dst->dirty += (uint64_t)__builtin_popcountl(dst->words[i]);
        }
    } else {
        /* each dirty run of the source marks the granules it touches */
        uint64_t g = 0;

        while ((g = find_bit(src, g, src->granules, true)) < src->granules) {
            uint64_t e = find_bit(src, g, src->granules, false);

            set_locked(dst, (int64_t)(g << src->shift),
                       (int64_t)((e - g) << src->shift));
            g = e;
        }
    }
out:
    if (second != first) {
        g_mutex_unlock(&second->lock);
    }
    g_mutex_unlock(&first->lock);
    return ok;
}

/* ---- bitmaps of nodes ---- */

uint32_t bd_node_default_bitmap_granularity(BdNode *node)
{
    int64_t cluster_size = 0;

    /*
     * QEMU takes the format's cluster size, clamped to 4 KiB..64 KiB, and
     * 64 KiB when the driver reports none; formats report theirs in the
     * image information.
     */
    if (node->drv && node->drv->query_image_info) {
        JsonObject *info = json_object_new();

        node->drv->query_image_info(node, info);
        cluster_size = json_object_get_int_member_with_default(
            info, "cluster-size", 0);
        json_object_unref(info);
    }
    return cluster_size > 0 ? CLAMP(cluster_size, 4096, 65536) : 65536;
}

void bd_node_dirty_bitmaps_init(BdNode *node)
{
    g_mutex_init(&node->dirty_lock);
    node->dirty_bitmaps = g_ptr_array_new();
}

void bd_node_dirty_bitmaps_release_all(BdNode *node)
{
    if (!node->dirty_bitmaps) {
        return;
    }
    while (node->dirty_bitmaps->len) {
        bd_dirty_bitmap_release(
            node->dirty_bitmaps->pdata[node->dirty_bitmaps->len - 1]);
    }
    g_ptr_array_unref(node->dirty_bitmaps);
    node->dirty_bitmaps = NULL;
    g_mutex_clear(&node->dirty_lock);
}

BdDirtyBitmap *bd_dirty_bitmap_find(BdNode *node, const char *name)
{
    BD_ASSERT_MAIN_LOOP();
    if (!name || !node->dirty_bitmaps) {
        return NULL;
    }
    for (guint i = 0; i < node->dirty_bitmaps->len; i++) {
        BdDirtyBitmap *bm = node->dirty_bitmaps->pdata[i];

        if (bm->name && strcmp(bm->name, name) == 0) {
            return bm;
        }
    }
    return NULL;
}

/* The next node of QEMU's bdrv_filter_or_cow_bs() walk, or NULL. */
static BdNode *filter_or_cow(BdNode *node)
{
    bool filter = node->drv && (node->drv->flags & BD_DRIVER_FILTER);

    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (filter ? (c->role & BD_CHILD_FILTERED) : (c->role & BD_CHILD_COW)) {
            return c->node;
        }
    }
    return NULL;
}

BdDirtyBitmap *bd_dirty_bitmap_find_in_chain(BdNode *node, const char *name,
                                             BdNode **pnode)
{
    BD_ASSERT_MAIN_LOOP();
    for (; node; node = filter_or_cow(node)) {
        BdDirtyBitmap *bm = bd_dirty_bitmap_find(node, name);

        if (bm) {
            if (pnode) {
                *pnode = node;
            }
            return bm;
        }
    }
    return NULL;
}

BdDirtyBitmap *bd_dirty_bitmap_lookup(const char *node_name,
                                      const char *name, BdNode **pnode,
                                      GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    BdNode *node = bd_node_find(node_name);
    BdDirtyBitmap *bm;

    if (!node) {
        bd_error_setg(errp, "Node '%s' not found", node_name);
        return NULL;
    }
    bm = bd_dirty_bitmap_find(node, name);
    if (!bm) {
        bd_error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (pnode) {
        *pnode = node;
    }
    return bm;
}

BdDirtyBitmap *bd_dirty_bitmap_create(BdNode *node, uint32_t granularity,
                                      const char *name, GError **errp)
{
    if (node->total_bytes < 0) {
        bd_error_setg(errp, "could not get length of device: %s",
                      g_strerror((int)-node->total_bytes));
        return NULL;
    }
    return bd_dirty_bitmap_create_sized(node, node->total_bytes, granularity,
                                        name, errp);
}

BdDirtyBitmap *bd_dirty_bitmap_create_sized(BdNode *node, int64_t size,
                                            uint32_t granularity,
                                            const char *name, GError **errp)
{
    BdDirtyBitmap *bm;

    BD_ASSERT_MAIN_LOOP();

    if (name) {
        if (bd_dirty_bitmap_find(node, name)) {
            bd_error_setg(errp, "Bitmap already exists: %s", name);
            return NULL;
        }
        if (strlen(name) > BD_DIRTY_BITMAP_MAX_NAME) {
            bd_error_setg(errp, "Bitmap name too long: %s", name);
            return NULL;
        }
    }
    bm = bd_dirty_bitmap_new(size, granularity, name);
    bm->node = node;
    g_mutex_lock(&node->dirty_lock);
    g_ptr_array_add(node->dirty_bitmaps, bm);
    __atomic_store_n(&node->dirty_bitmap_count, node->dirty_bitmaps->len,
                     __ATOMIC_RELEASE);
    g_mutex_unlock(&node->dirty_lock);
    return bm;
}

void bd_dirty_bitmap_release(BdDirtyBitmap *bm)
{
    BdNode *node = bm->node;

    if (!node) {
        return;
    }
    g_mutex_lock(&node->dirty_lock);
    g_ptr_array_remove(node->dirty_bitmaps, bm);
    __atomic_store_n(&node->dirty_bitmap_count, node->dirty_bitmaps->len,
                     __ATOMIC_RELEASE);
    g_mutex_unlock(&node->dirty_lock);
    bm->node = NULL;
    bd_dirty_bitmap_unref(bm);
}

void bd_node_set_dirty_slow(BdNode *node, int64_t offset, int64_t bytes)
{
    g_mutex_lock(&node->dirty_lock);
    for (guint i = 0; i < node->dirty_bitmaps->len; i++) {
        BdDirtyBitmap *bm = node->dirty_bitmaps->pdata[i];

        g_mutex_lock(&bm->lock);
        if (!bm->disabled) {
            set_locked(bm, offset, bytes);
        }
        g_mutex_unlock(&bm->lock);
    }
    g_mutex_unlock(&node->dirty_lock);
}

void bd_node_dirty_bitmaps_truncate(BdNode *node, int64_t size)
{
    if (!__atomic_load_n(&node->dirty_bitmap_count, __ATOMIC_ACQUIRE)) {
        return;
    }
    g_mutex_lock(&node->dirty_lock);
    for (guint i = 0; i < node->dirty_bitmaps->len; i++) {
        bd_dirty_bitmap_truncate(node->dirty_bitmaps->pdata[i], size);
    }
    g_mutex_unlock(&node->dirty_lock);
}

JsonArray *bd_node_dirty_bitmaps_info(BdNode *node)
{
    JsonArray *a;

    if (!node->dirty_bitmaps || !node->dirty_bitmaps->len) {
        return NULL;
    }
    a = json_array_new();
    /* newest first, as QEMU lists them */
    for (guint i = node->dirty_bitmaps->len; i-- > 0;) {
        BdDirtyBitmap *bm = node->dirty_bitmaps->pdata[i];
        JsonObject *o = json_object_new();

        if (bm->name) {
            json_object_set_string_member(o, "name", bm->name);
        }
        json_object_set_int_member(o, "count",
                                   (int64_t)bd_dirty_bitmap_count(bm));
        json_object_set_int_member(o, "granularity",
                                   bd_dirty_bitmap_granularity(bm));
        json_object_set_boolean_member(o, "recording",
                                       bd_dirty_bitmap_enabled(bm));
        json_object_set_boolean_member(o, "busy", bm->busy);
        json_object_set_boolean_member(o, "persistent", bm->persistent);
        if (bm->inconsistent) {
            /* QEMU shows the member only when it is true */
            json_object_set_boolean_member(o, "inconsistent", true);
        }
        json_array_add_object_element(a, o);
    }
    return a;
}

GPtrArray *bd_node_get_dirty_bitmaps(BdNode *node)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bd_dirty_bitmap_unref);

    BD_ASSERT_MAIN_LOOP();
    if (!node->dirty_bitmaps) {
        return a;
    }
    g_mutex_lock(&node->dirty_lock);
    for (guint i = node->dirty_bitmaps->len; i-- > 0;) {
        BdDirtyBitmap *bm = node->dirty_bitmaps->pdata[i];

        bd_dirty_bitmap_ref(bm);
        g_ptr_array_add(a, bm);
    }
    g_mutex_unlock(&node->dirty_lock);
    return a;
}

/* ---- persistence ---- */

bool bd_dirty_bitmap_persistent(const BdDirtyBitmap *bm)
{
    return bm->persistent;
}

void bd_dirty_bitmap_set_persistent(BdDirtyBitmap *bm, bool persistent)
{
    BD_ASSERT_MAIN_LOOP();
    bm->persistent = persistent;
}

bool bd_dirty_bitmap_inconsistent(const BdDirtyBitmap *bm)
{
    return bm->inconsistent;
}

void bd_dirty_bitmap_set_inconsistent(BdDirtyBitmap *bm)
{
    BD_ASSERT_MAIN_LOOP();
    /* as QEMU's bdrv_dirty_bitmap_set_inconsistent() */
    bm->inconsistent = true;
    bm->persistent = true;
    bd_dirty_bitmap_set_enabled(bm, false);
}

bool bd_dirty_bitmap_readonly(const BdDirtyBitmap *bm)
{
    return bm->readonly;
}

void bd_dirty_bitmap_set_readonly(BdDirtyBitmap *bm, bool readonly)
{
    BD_ASSERT_MAIN_LOOP();
    bm->readonly = readonly;
}

/* The granules [*first, *end) of a byte range, clipped to the bitmap. */
static bool granule_range(BdDirtyBitmap *bm, int64_t offset, int64_t bytes,
                          uint64_t *first, uint64_t *end)
{
    int64_t stop;

    if (offset < 0 || bytes <= 0 || offset >= bm->size) {
        return false;
    }
    stop = bytes > bm->size - offset ? bm->size : offset + bytes;
    *first = (uint64_t)offset >> bm->shift;
    *end = granules_for(stop, bm->shift);
    /* serialization works on whole words of the array */
    g_assert(*first % 64 == 0);
    return true;
}

uint64_t bd_dirty_bitmap_serialization_size(BdDirtyBitmap *bm,
                                            int64_t offset, int64_t bytes)
{
    uint64_t first, end, n = 0;

    g_mutex_lock(&bm->lock);
    if (granule_range(bm, offset, bytes, &first, &end)) {
        n = (end - first + 63) / 64 * 8;
    }
    g_mutex_unlock(&bm->lock);
    return n;
}

/* The mask of the bits of word @i inside granules [first, end). */
static unsigned long range_mask(size_t i, uint64_t first, uint64_t end)
{
    uint64_t lo = (uint64_t)i * BPL, hi = lo + BPL;
    unsigned long m = ~0UL;

    if (first > lo) {
        m &= ~0UL << (first - lo);
    }
    if (end < hi) {
        m &= ~0UL >> (hi - end);
    }
    return m;
}

/*
 * Word by word: @first is a multiple of 64 granules, so each word of the
 * array is BPL / 8 whole bytes of the buffer, lowest first.
 */
void bd_dirty_bitmap_serialize_part(BdDirtyBitmap *bm, uint8_t *buf,
                                    int64_t offset, int64_t bytes)
{
    uint64_t first, end;

    g_mutex_lock(&bm->lock);
    if (granule_range(bm, offset, bytes, &first, &end)) {
        uint64_t n = (end - first + 63) / 64 * 8;

        memset(buf, 0, n);
        for (size_t i = first / BPL; (uint64_t)i * BPL < end; i++) {
            unsigned long w = bm->words[i] & range_mask(i, first, end);
            uint8_t *out = buf + ((uint64_t)i * BPL - first) / 8;

            for (unsigned b = 0; w && b < BPL / 8; b++, w >>= 8) {
                out[b] = (uint8_t)w;
            }
        }
    }
    g_mutex_unlock(&bm->lock);
}

void bd_dirty_bitmap_deserialize_part(BdDirtyBitmap *bm, const uint8_t *buf,
                                      int64_t offset, int64_t bytes)
{
    uint64_t first, end;

    g_mutex_lock(&bm->lock);
    if (granule_range(bm, offset, bytes, &first, &end)) {
        for (size_t i = first / BPL; (uint64_t)i * BPL < end; i++) {
            unsigned long m = range_mask(i, first, end);
            const uint8_t *in = buf + ((uint64_t)i * BPL - first) / 8;
            unsigned long w = 0, old = bm->words[i];

            for (unsigned b = 0; b < BPL / 8; b++) {
                w |= (unsigned long)in[b] << (8 * b);
            }
            bm->words[i] = (old & ~m) | (w & m);
            bm->dirty += (uint64_t)__builtin_popcountl(bm->words[i]);
            bm->dirty -= (uint64_t)__builtin_popcountl(old);
        }
    }
    g_mutex_unlock(&bm->lock);
}

void bd_dirty_bitmap_deserialize_ones(BdDirtyBitmap *bm, int64_t offset,
                                      int64_t bytes)
{
    bd_dirty_bitmap_set(bm, offset, bytes);
}
