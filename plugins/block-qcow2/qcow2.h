/*
 * block-qcow2: the driver's state and the interfaces between its files.
 *
 * Locking (several IOThreads may run requests on one node at once):
 * - meta_lock (BdCoMutex) serialises every change of metadata: refcounts,
 *   L2 entries, L1 entries, the header, in-flight allocations.  It is
 *   never taken by reads, nor by writes to clusters that are already
 *   allocated and owned (QCOW_OFLAG_COPIED).
 * - each cache has a GMutex held only for lookups (never across a yield)
 *   and a BdCoMutex for filling and writing back entries; a reader pins
 *   the entry it reads, so it cannot be evicted under it.
 * - L2 entries are read and written with atomic 64-bit accesses: a
 *   reader sees either the old mapping or the finished new one (the data
 *   is written before the entry that points to it).
 * Lock order: meta_lock, then a cache's fill lock, then its GMutex.
 */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include <blockd/blockd.h>

#define QCOW_MAGIC 0x514649fbu          /* "QFI\xfb" */

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_MIN_HEADER_LEN 104

/* QEMU's limits on table sizes, so that what it opens we open */
#define QCOW_MAX_REFTABLE_SIZE (8u * 1024 * 1024)
#define QCOW_MAX_L1_SIZE (32u * 1024 * 1024)
#define QCOW_MAX_SNAPSHOTS 65536

/* header extensions */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* feature bits */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_MASK 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)
#define QCOW2_AUTOCLEAR_MASK 0x3ull

/* header field offsets */
#define HDR_INCOMPAT 72
#define HDR_REFTABLE_OFFSET 48

/* L1/L2 entry bits */
#define L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW_OFLAG_COPIED (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO (1ull << 0)
#define REFT_OFFSET_MASK 0xfffffffffffffe00ull

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* What one guest cluster (or subcluster) is, from its L2 entry. */
typedef enum Qcow2ClusterType {
    QCOW2_UNALLOCATED,      /* from the backing file, or zeroes */
    QCOW2_ZERO_PLAIN,       /* reads as zeroes, no host cluster */
    QCOW2_ZERO_ALLOC,       /* reads as zeroes, host cluster kept */
    QCOW2_NORMAL,           /* data at the host offset */
    QCOW2_COMPRESSED,       /* compressed data at the host offset */
    QCOW2_UNALLOCATED_ALLOC /* extended L2: host cluster, no data yet */
} Qcow2ClusterType;

/* Which metadata the overlap check guards (QEMU's bit order). */
enum {
    QCOW2_OL_MAIN_HEADER = 1 << 0,
    QCOW2_OL_ACTIVE_L1 = 1 << 1,
    QCOW2_OL_ACTIVE_L2 = 1 << 2,
    QCOW2_OL_REFCOUNT_TABLE = 1 << 3,
    QCOW2_OL_REFCOUNT_BLOCK = 1 << 4,
    QCOW2_OL_SNAPSHOT_TABLE = 1 << 5,
    QCOW2_OL_INACTIVE_L1 = 1 << 6,
    QCOW2_OL_INACTIVE_L2 = 1 << 7,
    QCOW2_OL_BITMAP_DIRECTORY = 1 << 8,
};
#define QCOW2_OL_CONSTANT (QCOW2_OL_MAIN_HEADER | QCOW2_OL_ACTIVE_L1 | \
                           QCOW2_OL_REFCOUNT_TABLE | \
                           QCOW2_OL_SNAPSHOT_TABLE | \
                           QCOW2_OL_BITMAP_DIRECTORY)
#define QCOW2_OL_CACHED (QCOW2_OL_CONSTANT | QCOW2_OL_ACTIVE_L2 | \
                         QCOW2_OL_REFCOUNT_BLOCK | QCOW2_OL_INACTIVE_L1)
#define QCOW2_OL_ALL (QCOW2_OL_CACHED | QCOW2_OL_INACTIVE_L2)

/* --- metadata cache (qcow2-cache.c) --- */

typedef struct Qcow2Cache Qcow2Cache;

/*
 * A cache of @count entries of @entry_size bytes, for tables stored in
 * @child.  Writing back a dirty entry first writes back @depends (when
 * set with qcow2_cache_set_depends) and flushes the file, so that
 * refcounts reach the disk before the L2 entries that need them.
 */
Qcow2Cache *qcow2_cache_new(BdChild *child, int count, size_t entry_size);
void qcow2_cache_free(Qcow2Cache *c);
void qcow2_cache_set_depends(Qcow2Cache *c, Qcow2Cache *depends);
/*
 * coroutine_fn: the entry holding the table bytes at host @offset
 * (entry-aligned), pinned: read from disk on a miss, or zero-filled
 * when @fresh (a new table).  Release with qcow2_cache_put().
 */
int qcow2_cache_get(Qcow2Cache *c, int64_t offset, bool fresh,
                    void **table);
void qcow2_cache_put(Qcow2Cache *c, void *table);
/* Mark the pinned entry of @table to be written back. */
void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table);
/* coroutine_fn: write every dirty entry back (not flushing the file). */
int qcow2_cache_write(Qcow2Cache *c);
/* coroutine_fn: qcow2_cache_write(), then flush the file. */
int qcow2_cache_flush(Qcow2Cache *c);
/* Drop the entry of @offset if cached (it is freed metadata). */
void qcow2_cache_discard(Qcow2Cache *c, int64_t offset);
/* Drop clean, unpinned entries unused since the last call. */
void qcow2_cache_clean_unused(Qcow2Cache *c);
bool qcow2_cache_is_dirty(Qcow2Cache *c);

/* --- the node's state --- */

typedef struct Qcow2InFlight Qcow2InFlight;

/* A snapshot's L1 table, for the inactive-l1/-l2 overlap checks. */
typedef struct Qcow2SnapshotL1 {
    uint64_t offset;
    uint32_t size;
    uint64_t *l2;           /* its L2 offsets (inactive-l2 only) */
} Qcow2SnapshotL1;

typedef struct Qcow2State {
    BdNode *node;
    BdChild *file;          /* metadata (and data without a data file) */
    BdChild *data_file;     /* where guest data lives (== file without) */
    BdChild *backing;       /* as opened; bd_node_get_backing() is now */

    /* header */
    uint32_t version;
    int cluster_bits;
    int64_t cluster_size;
    int64_t size;           /* virtual size */
    uint64_t incompat;
    uint64_t compat;
    uint64_t autoclear;
    int refcount_order;
    uint32_t header_length;
    int compression_type;
    uint32_t crypt_method;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    char *backing_file;     /* as the header has it, or NULL */
    char *full_backing_file;    /* the same, resolved against the image */
    char *backing_format;   /* the backing format extension, or NULL */
    char *image_data_file;  /* the data file name extension, or NULL */
    GByteArray *unknown_exts;   /* unknown extensions, kept as they are */
    GByteArray *unknown_header_fields;  /* v3 header bytes past 112 */
    GByteArray *feature_table;  /* the feature-name table, raw */
    uint32_t nb_bitmaps;
    uint64_t bitmap_directory_offset;
    uint64_t bitmap_directory_size;
    GPtrArray *bitmaps;     /* persistent bitmaps (qcow2-info.c) */
    GArray *snapshot_l1;    /* of Qcow2SnapshotL1 */
    GPtrArray *snapshot_info;   /* what ImageInfo shows (qcow2-snapshot.c) */

    /* geometry */
    bool extended_l2;
    int l2_entry_size;      /* bytes: 8, or 16 with extended L2 */
    int l2_bits;            /* log2 of the entries per L2 table */
    int64_t l2_size;        /* entries per L2 table */
    int subcluster_bits;    /* log2 of the subcluster size */
    int64_t subcluster_size;
    int csize_shift;        /* compressed descriptors */
    uint64_t csize_mask;
    uint64_t cluster_offset_mask;
    int refcount_bits;
    int refcount_block_bits;    /* log2 of the entries per block */
    uint64_t refcount_max;

    /* L1 table, host order; entries read/written atomically */
    uint64_t *l1_table;
    uint32_t l1_size;
    GSList *retired_l1;     /* replaced tables readers may still hold */
    int64_t l1_table_offset;

    /* refcount table, host order, under meta_lock */
    uint64_t *refcount_table;
    uint32_t refcount_table_size;   /* entries */
    uint32_t refcount_table_used;   /* 1 + the last non-empty entry */
    int64_t refcount_table_offset;
    uint32_t refcount_table_clusters;

    Qcow2Cache *l2_cache;
    int64_t l2_slice_size;          /* entries per cache slice */
    int l2_slice_bits;
    Qcow2Cache *refcount_cache;

    BdCoMutex meta_lock;
    Qcow2InFlight *inflight;        /* allocations in progress */
    int64_t free_cluster_index;     /* where to look for free clusters */
    int lockfree_ops;               /* reads and in-place writes running */

    /* options */
    bool use_lazy_refcounts;
    bool discard_passthrough_request;
    bool discard_passthrough_snapshot;
    bool discard_passthrough_other;
    int overlap_check;
    int64_t cache_clean_interval;
    BdAioTimer *clean_timer;

    JsonObject *opts;       /* the options opened with (for reopen) */
    bool read_only;
    bool have_encrypt_opts; /* 'encrypt' was given (refused later) */
    char *encrypt_format;   /* its format */
    bool dirty_marked;      /* we set the dirty bit for lazy refcounts */
    bool signaled_corruption;   /* a BLOCK_IMAGE_CORRUPTED went out */
    bool unusable;          /* fatal corruption: all I/O refused */
    bool data_file_raw;
    bool bitmaps_stored_ro; /* reopen read-only prepared: bitmaps stored */
} Qcow2State;

static inline int64_t offset_into_cluster(Qcow2State *s, int64_t off)
{
    return off & (s->cluster_size - 1);
}

static inline int64_t size_to_clusters(Qcow2State *s, int64_t size)
{
    return (size + s->cluster_size - 1) >> s->cluster_bits;
}

static inline int64_t l1_index_of(Qcow2State *s, int64_t off)
{
    return off >> (s->l2_bits + s->cluster_bits);
}

static inline int64_t l2_index_of(Qcow2State *s, int64_t off)
{
    return (off >> s->cluster_bits) & (s->l2_size - 1);
}

static inline bool has_data_file(Qcow2State *s)
{
    return s->incompat & QCOW2_INCOMPAT_DATA_FILE;
}

/*
 * Whether an L2 entry has a host cluster: an offset, or with an external
 * data file offset 0 marked COPIED (the spec allows 0 only there).
 */
static inline bool l2e_has_host(Qcow2State *s, uint64_t entry)
{
    return (entry & L2E_OFFSET_MASK) ||
           (has_data_file(s) && (entry & QCOW_OFLAG_COPIED) &&
            !(entry & QCOW_OFLAG_COMPRESSED));
}

/* --- header (qcow2-header.c) --- */

/* Parse and check the header and its extensions read from @buf. */
bool qcow2_parse_header(Qcow2State *s, const uint8_t *buf, size_t len,
                        int64_t file_len, GError **errp);
/* Check L1/refcount table placement and sizes; qsd's messages. */
bool qcow2_check_tables(Qcow2State *s, int64_t file_len, GError **errp);
/* coroutine_fn: write the incompatible feature bits (one field). */
int qcow2_write_incompat(Qcow2State *s, uint64_t incompat);
/* coroutine_fn: write the autoclear bits (one field). */
int qcow2_write_autoclear(Qcow2State *s, uint64_t autoclear);
/*
 * coroutine_fn, meta_lock held: rewrite the whole first cluster from the
 * state as QEMU's qcow2_update_header() lays it out (header, extensions:
 * backing format, data file name, feature table, bitmaps, unknown ones;
 * then the backing file name).  -ENOSPC when it does not fit.  Does not
 * flush.
 */
int qcow2_update_header(Qcow2State *s);
/* The names of @bits from the image's feature table (for messages). */
char *qcow2_feature_names(Qcow2State *s, int type, uint64_t bits);

/* qcow2-backing.c: the backing file name and format in the header */
int qcow2_co_change_backing_file(BdNode *node, const char *file,
                                 const char *fmt);
/* @name as the image refers to it, resolved against @file's name */
char *qcow2_relative_path(BdNode *node, BdChild *file, const char *name);

/* --- refcounts (qcow2-refcount.c), callers hold meta_lock --- */

int qcow2_get_refcount(Qcow2State *s, int64_t cluster_index,
                       uint64_t *refcount);
/* Allocate @n contiguous clusters; returns the host offset or -errno. */
int64_t qcow2_alloc_clusters(Qcow2State *s, int64_t n);
/* Allocate 1 to @n contiguous clusters (*@got of them). */
int64_t qcow2_alloc_clusters_upto(Qcow2State *s, int64_t n, int64_t *got);
/* Add @addend to the refcount of every cluster in the byte range. */
int qcow2_update_refcount(Qcow2State *s, int64_t offset, int64_t length,
                          int64_t addend);
/*
 * QEMU's qcow2_refcount_area(): new refcount structures that count every
 * cluster up to @start_offset (cluster aligned; only free space from
 * there on) plus @additional_clusters: new refcount blocks at
 * @start_offset, then a new refcount table after them, the header
 * switched to it and the old table freed.  !@exact_size: room to grow
 * (half the blocks more).  A @new_refblock_offset (not 0) is entered at
 * @new_refblock_index.  Returns the end of the new structures (where
 * the counted area goes on) or -errno.
 */
int64_t qcow2_refcount_area(Qcow2State *s, int64_t start_offset,
                            uint64_t additional_clusters, bool exact_size,
                            uint64_t new_refblock_index,
                            int64_t new_refblock_offset);
/* Drop one reference to the clusters of the range; discard as told. */
int qcow2_free_clusters(Qcow2State *s, int64_t offset, int64_t length,
                        bool pass_discard);
/* Drop the reference of an L2 entry's host cluster(s). */
int qcow2_free_l2_entry(Qcow2State *s, uint64_t l2_entry);
/* The same, passing the discard to the file when @pass. */
int qcow2_free_l2_entry_discard(Qcow2State *s, uint64_t l2_entry,
                                bool pass);

/* --- mapping (qcow2-cluster.c) --- */

/*
 * coroutine_fn, no lock: what guest @offset maps to, for at most @bytes:
 * sets *@type, *@host (host offset of @offset for NORMAL and ZERO_ALLOC,
 * the L2 entry for COMPRESSED) and *@pnum (bytes of the same kind that
 * follow, contiguous on the host for NORMAL).  Returns 0 or -errno.
 */
int qcow2_get_host_offset(Qcow2State *s, int64_t offset, int64_t bytes,
                          Qcow2ClusterType *type, uint64_t *host,
                          int64_t *pnum, bool *copied);
/* The type of an L2 entry (with its bitmap) at subcluster @sc. */
Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t entry,
                                  uint64_t bitmap, int sc);
/*
 * meta_lock held: pin the L2 slice that maps guest @offset, allocating
 * the L2 table if there is none or copying it if it is shared; *@slice
 * and *@index (entry index within the slice).
 */
int qcow2_get_l2_slice_alloc(Qcow2State *s, int64_t offset,
                             uint64_t **slice, int *index);
/* Read / write the entry (and bitmap) @i of a pinned slice. */
uint64_t qcow2_l2_get(Qcow2State *s, uint64_t *slice, int i);
uint64_t qcow2_l2_get_bitmap(Qcow2State *s, uint64_t *slice, int i);
void qcow2_l2_set(Qcow2State *s, uint64_t *slice, int i, uint64_t entry,
                  uint64_t bitmap);
/* meta_lock held: pin the slice at guest @offset, or *@slice NULL. */
int qcow2_get_l2_slice(Qcow2State *s, int64_t offset, uint64_t **slice,
                       int *index);

/* --- overlap checks and corruption (qcow2-io.c) --- */

/*
 * meta_lock not needed: 0 if writing host [@offset, +@size) touches no
 * metadata guarded by the node's overlap checks (minus @ign); otherwise
 * marks the image corrupt and returns -EIO.
 */
int qcow2_pre_write_overlap_check(Qcow2State *s, int ign, int64_t offset,
                                  int64_t size);
/*
 * Report corruption (BLOCK_IMAGE_CORRUPTED, QEMU's suppression rules);
 * when @fatal and writable, mark the image corrupt and make the node
 * refuse all I/O.  @offset/@size: the access, -1 for none.
 */
void qcow2_signal_corruption(Qcow2State *s, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

/* After a fatal corruption the node refuses all I/O, as QEMU's does. */
static inline bool qcow2_unusable(Qcow2State *s)
{
    return __atomic_load_n(&s->unusable, __ATOMIC_ACQUIRE);
}
/* coroutine_fn: set the dirty bit (lazy refcounts) before a write. */
int qcow2_mark_dirty(Qcow2State *s);
/* coroutine_fn: write the caches back and clear the dirty bit. */
int qcow2_mark_clean(Qcow2State *s);
/* coroutine_fn, meta_lock held: write back the metadata caches. */
int qcow2_write_caches(Qcow2State *s);

/*
 * meta_lock held: true with *@queue (to wait in) if an allocation of
 * guest [@start, @end) is in flight.
 */
bool qcow2_find_inflight(Qcow2State *s, int64_t start, int64_t end,
                         BdCoQueue **queue);
/* Wait until no lock-free read or write runs (before freeing clusters). */
void qcow2_wait_lockfree_idle(Qcow2State *s);

/* --- I/O (qcow2-io.c) --- */

/*
 * coroutine_fn: read from @child, the part past its end as zeroes (as
 * QEMU's protocol drivers read it).
 */
int qcow2_child_preadv(BdChild *child, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, size_t qoff);
int qcow2_child_pread(BdChild *child, int64_t offset, int64_t bytes,
                      void *buf);

int qcow2_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                    BdIOVector *qiov, BdRequestFlags flags);
int qcow2_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags);
int qcow2_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                          int64_t bytes, int64_t *pnum, int64_t *map,
                          BdNode **file);
int qcow2_co_flush(BdNode *node);

/* --- zeroes, discard (qcow2-discard.c) --- */

/*
 * coroutine_fn: make [@offset, +@bytes) (aligned) read as zeroes through
 * L2 entries: a discard (@discard, QEMU's semantics), or a zero write
 * that may free host clusters (@unmap); @full removes every trace
 * (shrinking).  -ENOTSUP when it takes writing data.
 */
int qcow2_zero_range(Qcow2State *s, int64_t offset, int64_t bytes,
                     bool discard, bool unmap, bool full);
int qcow2_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                           BdRequestFlags flags);
int qcow2_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes);

/* --- query information (qcow2-info.c) --- */

/* coroutine_fn: read the names and flags of the persistent bitmaps. */
int qcow2_read_bitmap_list(Qcow2State *s);
void qcow2_free_bitmap_list(Qcow2State *s);
/* coroutine_fn: the snapshots' L1 tables (and L2 offsets if checked). */
int qcow2_read_snapshot_list(Qcow2State *s);
void qcow2_free_snapshot_list(Qcow2State *s);
/* BdBlockDriver.query_image_info */
void qcow2_query_image_info(BdNode *node, JsonObject *info);

/* --- persistent dirty bitmaps (qcow2-bitmap.c) --- */

/*
 * coroutine_fn, at open (caches set up): the directory's bitmaps become
 * the node's persistent bitmaps; writable, they are marked in use.
 */
int qcow2_load_bitmaps(Qcow2State *s, GError **errp);
/* coroutine_fn, meta_lock held, writable: store the node's bitmaps. */
int qcow2_store_bitmaps(Qcow2State *s, GError **errp);
/*
 * coroutine_fn, meta_lock held: blockdev-reopen read-only stores the
 * bitmaps and makes them read-only; read-write marks them in use again
 * and writable.
 */
int qcow2_reopen_bitmaps_ro(Qcow2State *s, GError **errp);
int qcow2_reopen_bitmaps_rw(Qcow2State *s, GError **errp);
/* coroutine_fn: whether the bitmaps allow a resize (QEMU's checks). */
int qcow2_truncate_bitmaps_check(Qcow2State *s, GError **errp);
/* BdBlockDriver's persistent bitmap callbacks (main loop). */
bool qcow2_can_store_new_dirty_bitmap(BdNode *node, const char *name,
                                      uint32_t granularity, GError **errp);
bool qcow2_remove_persistent_dirty_bitmap(BdNode *node, const char *name,
                                          GError **errp);

/* --- internal snapshots (qcow2-snapshot.c) --- */

/* coroutine_fn: read the snapshot table's entries for the image info. */
int qcow2_read_snapshot_info(Qcow2State *s);
void qcow2_free_snapshot_info(Qcow2State *s);
/* Add ImageInfo's snapshots member (none without snapshots). */
void qcow2_snapshot_image_info(Qcow2State *s, JsonObject *info);
/* BdBlockDriver's snapshot callbacks (main loop; create/delete drained). */
int qcow2_snapshot_list(BdNode *node, JsonArray **list);
int qcow2_snapshot_create(BdNode *node, const char *name, int64_t date_sec,
                          int64_t date_nsec, int64_t vm_clock_nsec,
                          GError **errp);
int qcow2_snapshot_delete(BdNode *node, const char *id, const char *name,
                          GError **errp);

/* --- repair (qcow2-check.c) --- */

/*
 * coroutine_fn, meta_lock held, writable: rebuild the refcounts and
 * COPIED flags of a dirty image and clear its dirty bit.
 */
int qcow2_repair_dirty(Qcow2State *s, GError **errp);

/* --- resizing (qcow2-resize.c) --- */

int qcow2_co_truncate(BdNode *node, int64_t offset, bool exact,
                      BdPreallocMode prealloc, BdRequestFlags flags,
                      GError **errp);

/* --- runtime options (block-qcow2.c) --- */

/* What BlockdevOptionsQcow2 sets and a reopen may change. */
typedef struct Qcow2RuntimeOpts {
    bool lazy_refcounts;
    bool pass_discard_request;
    bool pass_discard_snapshot;
    bool pass_discard_other;
    int overlap_check;
    int64_t l2_cache_entries;
    int64_t l2_entry_size;
    int64_t refcount_cache_entries;
    int64_t cache_clean_interval;
} Qcow2RuntimeOpts;

/*
 * The runtime options of @opts (BD_OPEN_* @flags for the discard
 * default) for the image whose header @s holds, with QEMU's checks and
 * messages in its order.
 */
bool qcow2_parse_runtime_opts(Qcow2State *s, JsonObject *opts,
                              unsigned flags, Qcow2RuntimeOpts *rt,
                              GError **errp);
/* Start / stop the cache-clean-interval timer in @ctx. */
void qcow2_clean_timer_start(Qcow2State *s, BdAioContext *ctx);
void qcow2_clean_timer_stop(Qcow2State *s);

/* --- blockdev-create (qcow2-create.c) --- */

/* BdBlockDriver.co_create: BlockdevCreateOptionsQcow2. */
int qcow2_co_create(JsonObject *options, GError **errp);

/* --- blockdev-reopen (qcow2-reopen.c) --- */

bool qcow2_reopen_prepare(BdNode *node, JsonObject *options, void **state,
                          GError **errp);
void qcow2_reopen_commit(BdNode *node, void *state);
void qcow2_reopen_abort(BdNode *node, void *state);

/* --- compression (qcow2-compress.c) --- */

/*
 * Decompress @src (@src_len bytes, possibly followed by garbage up to
 * the sector end) into exactly @dest_len bytes of @dest.  0 or -EIO.
 */
int qcow2_decompress(int type, void *dest, size_t dest_len,
                     const void *src, size_t src_len);

/* --- compressed writes (qcow2-compress-write.c) --- */

/*
 * Compress @src into at most @dest_len bytes of @dest with compression
 * @type; the length, -ENOMEM if it does not fit, -EIO.  Any thread.
 */
int qcow2_compress(int type, void *dest, size_t dest_len, const void *src,
                   size_t src_len);
/*
 * coroutine_fn: BD_REQ_WRITE_COMPRESSED writes: whole clusters at a
 * cluster-aligned @offset (the last one of the image may be short), into
 * unallocated clusters; compressed in the thread pool.
 */
int qcow2_co_pwritev_compressed(Qcow2State *s, int64_t offset,
                                int64_t bytes, BdIOVector *qiov);

#endif /* BLOCK_QCOW2_H */
