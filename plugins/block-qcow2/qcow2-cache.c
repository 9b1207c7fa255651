/*
 * block-qcow2: the metadata cache (L2 slices, refcount blocks).
 *
 * A hit costs one short GMutex section and pins the entry; a miss is
 * filled under the cache's BdCoMutex so that two coroutines missing the
 * same table read it once.  A dirty entry is written back when it is
 * evicted or when the cache is written, after the cache it depends on
 * (refcounts before the L2 entries that need them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

typedef struct Qcow2CacheEntry {
    int64_t offset;     /* host offset of the table bytes, -1: empty */
    int ref;            /* pins */
    bool dirty;
    bool used;          /* since the last cache-clean-interval tick */
    uint64_t lru;
} Qcow2CacheEntry;

struct Qcow2Cache {
    BdChild *child;
    int count;
    size_t entry_size;
    uint8_t *data;
    Qcow2CacheEntry *e;
    GHashTable *map;    /* offset -> entry index + 1 */
    GMutex lock;
    BdCoMutex fill_lock;
    uint64_t lru_clock;
    Qcow2Cache *depends;
};

Qcow2Cache *qcow2_cache_new(BdChild *child, int count, size_t entry_size)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    void *data;

    if (posix_memalign(&data, 4096, (size_t)count * entry_size)) {
        g_free(c);
        return NULL;
    }
    c->child = child;
    c->count = count;
    c->entry_size = entry_size;
    c->data = data;
    c->e = g_new0(Qcow2CacheEntry, count);
    for (int i = 0; i < count; i++) {
        c->e[i].offset = -1;
    }
    c->map = g_hash_table_new(g_int64_hash, g_int64_equal);
    g_mutex_init(&c->lock);
    bd_co_mutex_init(&c->fill_lock);
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    g_hash_table_destroy(c->map);
    g_mutex_clear(&c->lock);
    free(c->data);
    g_free(c->e);
    g_free(c);
}

void qcow2_cache_set_depends(Qcow2Cache *c, Qcow2Cache *depends)
{
    c->depends = depends;
}

static void *entry_data(Qcow2Cache *c, int i)
{
    return c->data + (size_t)i * c->entry_size;
}

static int entry_index(Qcow2Cache *c, void *table)
{
    size_t off = (uint8_t *)table - c->data;

    g_assert(off % c->entry_size == 0 && off / c->entry_size <
             (size_t)c->count);
    return off / c->entry_size;
}

/* c->lock held: the index of @offset's entry, or -1. */
static int lookup(Qcow2Cache *c, int64_t offset)
{
    gpointer v = g_hash_table_lookup(c->map, &offset);

    return v ? GPOINTER_TO_INT(v) - 1 : -1;
}

static void map_insert(Qcow2Cache *c, int i)
{
    g_hash_table_insert(c->map, &c->e[i].offset, GINT_TO_POINTER(i + 1));
}

/*
 * fill_lock held: write entry @i back if it is dirty.  The dirty flag is
 * cleared before the write, so that a change made meanwhile marks it
 * dirty again instead of being lost.
 */
static int write_entry(Qcow2Cache *c, int i)
{
    int64_t offset;
    int ret;

    g_mutex_lock(&c->lock);
    if (!c->e[i].dirty) {
        g_mutex_unlock(&c->lock);
        return 0;
    }
    c->e[i].dirty = false;
    offset = c->e[i].offset;
    g_mutex_unlock(&c->lock);

    if (c->depends && qcow2_cache_is_dirty(c->depends)) {
        ret = qcow2_cache_flush(c->depends);
        if (ret < 0) {
            goto fail;
        }
    }
    ret = bd_child_co_pwrite(c->child, offset, c->entry_size,
                             entry_data(c, i), 0);
    if (ret < 0) {
        goto fail;
    }
    return 0;

fail:
    g_mutex_lock(&c->lock);
    c->e[i].dirty = true;
    g_mutex_unlock(&c->lock);
    return ret;
}

int qcow2_cache_get(Qcow2Cache *c, int64_t offset, bool fresh, void **table)
{
    int i, victim;
    int ret;

    g_mutex_lock(&c->lock);
    i = lookup(c, offset);
    if (i >= 0) {
        c->e[i].ref++;
        c->e[i].lru = ++c->lru_clock;
        c->e[i].used = true;
        g_mutex_unlock(&c->lock);
        if (fresh) {
            memset(entry_data(c, i), 0, c->entry_size);
        }
        *table = entry_data(c, i);
        return 0;
    }
    g_mutex_unlock(&c->lock);

    bd_co_mutex_lock(&c->fill_lock);
    for (;;) {
        g_mutex_lock(&c->lock);
        i = lookup(c, offset);
        if (i >= 0) {
            /* filled by the coroutine we waited for */
            c->e[i].ref++;
            c->e[i].lru = ++c->lru_clock;
            c->e[i].used = true;
            g_mutex_unlock(&c->lock);
            bd_co_mutex_unlock(&c->fill_lock);
            if (fresh) {
                memset(entry_data(c, i), 0, c->entry_size);
            }
            *table = entry_data(c, i);
            return 0;
        }
        victim = -1;
        for (int j = 0; j < c->count; j++) {
            if (c->e[j].ref) {
                continue;
            }
            if (c->e[j].offset < 0) {
                victim = j;
                break;
            }
            if (victim < 0 || c->e[j].lru < c->e[victim].lru) {
                victim = j;
            }
        }
        if (victim >= 0) {
            break;
        }
        /* every entry is pinned by a request in progress: let one end */
        g_mutex_unlock(&c->lock);
        bd_co_sleep_ns(10000);
    }
    /* reserve the victim: out of the map, pinned by us */
    if (c->e[victim].offset >= 0) {
        g_hash_table_remove(c->map, &c->e[victim].offset);
    }
    c->e[victim].ref = 1;
    g_mutex_unlock(&c->lock);

    ret = write_entry(c, victim);
    if (ret < 0) {
        /* keep the unwritten table where it was */
        g_mutex_lock(&c->lock);
        map_insert(c, victim);
        c->e[victim].ref = 0;
        g_mutex_unlock(&c->lock);
        bd_co_mutex_unlock(&c->fill_lock);
        return ret;
    }
    if (fresh) {
        memset(entry_data(c, victim), 0, c->entry_size);
    } else {
        ret = qcow2_child_pread(c->child, offset, c->entry_size,
                                entry_data(c, victim));
        if (ret < 0) {
            g_mutex_lock(&c->lock);
            c->e[victim].offset = -1;
            c->e[victim].ref = 0;
            g_mutex_unlock(&c->lock);
            bd_co_mutex_unlock(&c->fill_lock);
            return ret;
        }
    }
    g_mutex_lock(&c->lock);
    c->e[victim].offset = offset;
    c->e[victim].dirty = false;
    c->e[victim].used = true;
    c->e[victim].lru = ++c->lru_clock;
    map_insert(c, victim);
    g_mutex_unlock(&c->lock);
    bd_co_mutex_unlock(&c->fill_lock);
    *table = entry_data(c, victim);
    return 0;
}

void qcow2_cache_put(Qcow2Cache *c, void *table)
{
    int i = entry_index(c, table);

    g_mutex_lock(&c->lock);
    g_assert(c->e[i].ref > 0);
    c->e[i].ref--;
    g_mutex_unlock(&c->lock);
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table)
{
    int i = entry_index(c, table);

    g_mutex_lock(&c->lock);
    c->e[i].dirty = true;
    g_mutex_unlock(&c->lock);
}

bool qcow2_cache_is_dirty(Qcow2Cache *c)
{
    bool dirty = false;

    g_mutex_lock(&c->lock);
    for (int i = 0; i < c->count && !dirty; i++) {
        dirty = c->e[i].dirty;
    }
    g_mutex_unlock(&c->lock);
    return dirty;
}

int qcow2_cache_write(Qcow2Cache *c)
{
    int ret = 0;

    bd_co_mutex_lock(&c->fill_lock);
    for (int i = 0; i < c->count; i++) {
        int r = write_entry(c, i);

        if (r < 0 && ret == 0) {
            ret = r;
        }
    }
    bd_co_mutex_unlock(&c->fill_lock);
    return ret;
}

int qcow2_cache_flush(Qcow2Cache *c)
{
    int ret = qcow2_cache_write(c);

    if (ret == 0) {
        ret = bd_child_co_flush(c->child);
    }
    return ret;
}

void qcow2_cache_discard(Qcow2Cache *c, int64_t offset)
{
    int i;

    g_mutex_lock(&c->lock);
    i = lookup(c, offset);
    if (i >= 0 && c->e[i].ref == 0) {
        g_hash_table_remove(c->map, &c->e[i].offset);
        c->e[i].offset = -1;
        c->e[i].dirty = false;
    }
    g_mutex_unlock(&c->lock);
}

void qcow2_cache_clean_unused(Qcow2Cache *c)
{
    g_mutex_lock(&c->lock);
    for (int i = 0; i < c->count; i++) {
        Qcow2CacheEntry *e = &c->e[i];

        if (e->offset >= 0 && !e->ref && !e->dirty && !e->used) {
            g_hash_table_remove(c->map, &e->offset);
            e->offset = -1;
        }
        e->used = false;
    }
    g_mutex_unlock(&c->lock);
}
