/*
 * blockd plugin ABI: block nodes and children as drivers see them.
 *
 * A node (BdNode) is one instance of a block driver in the graph: it has a
 * node-name, the driver's per-node state, an AioContext, open flags and
 * children.  A child (BdChild) is the edge from a parent node to a child
 * node, with a role (the "file" of a format, the "backing" image, ...).
 * Both are owned by the core and opaque; drivers reach them through the
 * functions below.
 *
 * A format or filter driver never calls its child's driver directly: it
 * calls the bd_child_co_*() functions, which go through the core's
 * request layer of the child node (alignment, serialisation, zero
 * detection, statistics), exactly as a request from an export does.
 *
 * I/O functions return 0 (or a non-negative value where documented) on
 * success and a negative errno on failure.
 */
#ifndef BLOCKD_BLOCK_H
#define BLOCKD_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/aio.h>
#include <blockd/coroutine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdNode BdNode;
typedef struct BdChild BdChild;

/* --- I/O vectors ---------------------------------------------------------- */

/*
 * BdIOVector: a scatter/gather list of @niov buffers holding @size bytes in
 * all.  @nalloc is the capacity of @iov when the vector owns it, -1 when
 * @iov is borrowed (bd_iovec_init_external(), bd_iovec_init_buf()).  A
 * vector of one buffer uses @local and needs no allocation.  The layout is
 * part of the ABI; modify vectors only through the functions below.
 */
typedef struct BdIOVector {
    struct iovec *iov;
    int niov;
    int nalloc;
    size_t size;
    struct iovec local;
} BdIOVector;

/* Initialise @qiov empty, owning room for @alloc_hint buffers. */
void bd_iovec_init(BdIOVector *qiov, int alloc_hint);

/* Initialise @qiov as the one buffer @buf of @len bytes (no allocation). */
void bd_iovec_init_buf(BdIOVector *qiov, void *buf, size_t len);

/* Initialise @qiov over the caller's array @iov of @niov buffers. */
void bd_iovec_init_external(BdIOVector *qiov, struct iovec *iov, int niov);

/* Append @len bytes at @base (owned vectors only). */
void bd_iovec_add(BdIOVector *qiov, void *base, size_t len);

/* Free what bd_iovec_init()/bd_iovec_add() allocated. */
void bd_iovec_destroy(BdIOVector *qiov);

/* Copy @bytes from @qiov at @offset into @buf; returns bytes copied. */
size_t bd_iovec_to_buf(const BdIOVector *qiov, size_t offset, void *buf,
                       size_t bytes);

/* Copy @bytes from @buf into @qiov at @offset; returns bytes copied. */
size_t bd_iovec_from_buf(BdIOVector *qiov, size_t offset, const void *buf,
                         size_t bytes);

/* Set @bytes of @qiov at @offset to @fillc; returns bytes set. */
size_t bd_iovec_memset(BdIOVector *qiov, size_t offset, int fillc,
                       size_t bytes);

/* True if every byte of @qiov is zero. */
bool bd_iovec_is_zero(const BdIOVector *qiov);

/* --- request flags, block status, permissions ------------------------------ */

/*
 * BdRequestFlags: flags of a write or zero-write request.  A driver
 * announces which it handles in BdBlockLimits.supported_write_flags and
 * .supported_zero_flags; the request layer emulates or drops the others
 * (FUA by a flush after the write, MAY_UNMAP is only a hint), so a driver
 * never sees a flag it did not announce.
 * @BD_REQ_FUA: the data must be on stable storage when the request
 *     completes.
 * @BD_REQ_MAY_UNMAP: a zero-write may deallocate the range, as long as it
 *     then reads as zeroes.
 * @BD_REQ_NO_FALLBACK: a zero-write must fail with -ENOTSUP rather than
 *     write explicit zero buffers (the caller has a cheaper plan).
 * @BD_REQ_WRITE_UNCHANGED: the write does not change what a reader sees
 *     (copy-on-read, a mirror's copy); it needs only the WRITE_UNCHANGED
 *     permission.
 * @BD_REQ_WRITE_COMPRESSED (added for compressed writes): store the data
 *     compressed (whole clusters of a format that compresses, QEMU's
 *     BDRV_REQ_WRITE_COMPRESSED).  Never emulated: a write with it to a
 *     node whose driver does not announce it fails with -ENOTSUP.
 */
typedef enum BdRequestFlags {
    BD_REQ_FUA = 1u << 0,
    BD_REQ_MAY_UNMAP = 1u << 1,
    BD_REQ_NO_FALLBACK = 1u << 2,
    BD_REQ_WRITE_UNCHANGED = 1u << 3,
    BD_REQ_WRITE_COMPRESSED = 1u << 4,
} BdRequestFlags;

/*
 * Block status bits (the values QEMU uses), returned by co_block_status:
 * @BD_BLOCK_DATA: the range reads as data from this node (or its file).
 * @BD_BLOCK_ZERO: the range reads as zeroes.
 * @BD_BLOCK_OFFSET_VALID: *map holds the offset of the range in *file.
 * @BD_BLOCK_RAW: (drivers only) ask the core to answer from *file at *map
 *     instead (what a filter or raw returns); never seen by callers.
 * @BD_BLOCK_ALLOCATED: the content is defined by this layer, not a backing
 *     node (the core sets it from DATA/ZERO for non-backing layers).
 * @BD_BLOCK_EOF: the range ends at the end of the node.
 */
#define BD_BLOCK_DATA         0x01
#define BD_BLOCK_ZERO         0x02
#define BD_BLOCK_OFFSET_VALID 0x04
#define BD_BLOCK_RAW          0x08
#define BD_BLOCK_ALLOCATED    0x10
#define BD_BLOCK_EOF          0x20

/*
 * Permissions a user of a node (a child edge, or the core's own handle for
 * an export or job) takes and shares, as QEMU names them in messages:
 * @BD_PERM_CONSISTENT_READ ("consistent read"): what it reads is what was
 *     written (a mirror target under copy may not offer it).
 * @BD_PERM_WRITE ("write"): may change what readers see.
 * @BD_PERM_WRITE_UNCHANGED ("write unchanged"): writes that do not change
 *     the content.
 * @BD_PERM_RESIZE ("resize"): may change the size.
 * @BD_PERM_GRAPH_MOD ("change children"): kept for completeness; QEMU 7.2
 *     no longer takes it and the core never requests it.
 * A user takes a set of perms and shares a set; two users conflict when
 * one takes what the other does not share.
 */
#define BD_PERM_CONSISTENT_READ  0x01u
#define BD_PERM_WRITE            0x02u
#define BD_PERM_WRITE_UNCHANGED  0x04u
#define BD_PERM_RESIZE           0x08u
#define BD_PERM_GRAPH_MOD        0x10u
#define BD_PERM_ALL              0x1fu

/*
 * Child roles (bits, as QEMU's BdrvChildRole):
 * @BD_CHILD_DATA: the child holds guest-visible data (raw's file).
 * @BD_CHILD_METADATA: the child holds the format's metadata (qcow2's file).
 * @BD_CHILD_FILTERED: the parent is a filter passing requests to it.
 * @BD_CHILD_COW: a backing node read for unallocated ranges.
 * @BD_CHILD_PRIMARY: the parent's main child (its "file", or a filter's
 *     only child).
 */
typedef enum BdChildRole {
    BD_CHILD_DATA = 1u << 0,
    BD_CHILD_METADATA = 1u << 1,
    BD_CHILD_FILTERED = 1u << 2,
    BD_CHILD_COW = 1u << 3,
    BD_CHILD_PRIMARY = 1u << 4,
} BdChildRole;

/*
 * Open flags of a node (bd_node_get_open_flags()), from BlockdevOptions'
 * common members:
 * @BD_OPEN_RDWR: the node is writable (not read-only).
 * @BD_OPEN_CACHE_DIRECT: cache.direct=on: bypass the host page cache
 *     (O_DIRECT for files).
 * @BD_OPEN_NO_FLUSH: cache.no-flush=on; the core then never calls the
 *     driver's co_flush for this node (drivers need not check).
 * @BD_OPEN_UNMAP: discard=unmap: discard requests reach the driver.
 * @BD_OPEN_AUTO_READ_ONLY: auto-read-only=on (see
 *     bd_node_apply_auto_read_only()).
 * @BD_OPEN_FORCE_SHARE: force-share=on: the node shares every permission
 *     and a protocol driver must not lock its file against others.
 */
#define BD_OPEN_RDWR            0x01u
#define BD_OPEN_CACHE_DIRECT    0x02u
#define BD_OPEN_NO_FLUSH        0x04u
#define BD_OPEN_UNMAP           0x08u
#define BD_OPEN_AUTO_READ_ONLY  0x10u
#define BD_OPEN_FORCE_SHARE     0x20u

/* PreallocMode, in QAPI's order. */
typedef enum BdPreallocMode {
    BD_PREALLOC_OFF = 0,
    BD_PREALLOC_METADATA,
    BD_PREALLOC_FALLOC,
    BD_PREALLOC_FULL,
} BdPreallocMode;

/* --- nodes ------------------------------------------------------------------ */

/* The node's name (given or generated "#blockNNN").  Any thread. */
const char *bd_node_get_name(BdNode *node);

/* The name of the node's driver ("raw", "file", ...).  Any thread. */
const char *bd_node_get_driver_name(BdNode *node);

/*
 * The driver's per-node state: BdBlockDriver.instance_size zeroed bytes,
 * allocated before open() and freed after close().  Any thread.
 */
void *bd_node_get_opaque(BdNode *node);

/* The context the node's requests and callbacks run in.  Any thread. */
BdAioContext *bd_node_get_aio_context(BdNode *node);

/* True if the node is read-only now.  Any thread. */
bool bd_node_is_read_only(BdNode *node);

/* The node's BD_OPEN_* flags.  Any thread. */
unsigned bd_node_get_open_flags(BdNode *node);

/*
 * For a driver's open() that cannot open its resource writable: with
 * auto-read-only the node becomes read-only and this returns true (the
 * driver goes on read-only); otherwise it fails with "@errmsg: ..." the
 * way QEMU words it and returns false.  Main loop, from open() only.
 */
bool bd_node_apply_auto_read_only(BdNode *node, const char *errmsg,
                                  GError **errp);

/*
 * The permissions all users of @node take together and the ones they all
 * share (the last values passed to the driver's set_perm).  Main loop.
 */
void bd_node_get_perm(BdNode *node, uint64_t *perm, uint64_t *shared);

/*
 * Look a node up by its node name: the node, or NULL when there is none.
 * The pointer is borrowed: valid while the node stays in the graph (the
 * caller must not yield in between).  Main loop.
 */
BdNode *bd_node_find(const char *node_name);

/*
 * The node's request alignment in bytes (a power of two, at least 1):
 * requests that are not multiples of it cost a read-modify-write in the
 * request layer.  What QEMU calls bl.request_alignment: 1 for buffered
 * files, the logical block size with cache.direct=on; what stat() shows
 * as st_blksize for a FUSE export.  Any thread.
 */
uint32_t bd_node_get_request_alignment(BdNode *node);

/*
 * The longest read or write the node's driver takes in one piece, in
 * bytes; 0 when it sets no limit (the request layer splits longer
 * requests, so this is a preference for callers, not a rule).  Any
 * thread.
 */
uint32_t bd_node_get_max_transfer(BdNode *node);

/*
 * The node's file name as query-named-block-nodes shows it: a path, a
 * protocol name ("null-co://"), or "json:{...}".  Newly allocated (free
 * with g_free()).  What a format resolves a relative backing or data file
 * name against.  Main loop.
 */
char *bd_node_get_filename(BdNode *node);

/*
 * For format drivers that find their metadata corrupt: send the
 * BLOCK_IMAGE_CORRUPTED event for @node with @msg, the host @offset and
 * @size of the access that found it (each -1 when there is none) and
 * @fatal (the driver has marked the image corrupt and refuses I/O from
 * now on).  The event goes out from the main loop.  Any thread.
 */
void bd_node_report_corruption(BdNode *node, const char *msg,
                               int64_t offset, int64_t size, bool fatal);

/* The node's "file" child, NULL if none.  Any thread. */
BdChild *bd_node_get_file(BdNode *node);

/* The node's "backing" child, NULL if none.  Any thread. */
BdChild *bd_node_get_backing(BdNode *node);

/*
 * The driver's get_info for @node (see BdBlockDriver): 0 with *@is_dirty
 * set, or a negative errno (-ENOTSUP when the driver keeps no image
 * information).  Formats that show their file as it is pass it on.
 * Main loop.
 */
int bd_node_get_info(BdNode *node, bool *is_dirty);

/*
 * Bytes @node occupies on the host (what query-block reports as
 * actual-size): the driver's get_allocated_file_size, else for formats
 * and filters the sum over their data, metadata and filtered children;
 * a negative errno when unknown (-ENOTSUP for protocols that cannot
 * tell).  Main loop or @node's AioContext.
 */
int64_t bd_node_get_allocated_file_size(BdNode *node);

/*
 * Memory of @size bytes aligned for I/O on @node (its opt_mem_alignment);
 * NULL if out of memory.  Free with free().  Any thread.
 */
void *bd_node_try_blockalign(BdNode *node, size_t size);

/*
 * Open the child named @member of the parent being opened, from
 * @options' member @member (a BlockdevRef: a node-name string refers to
 * an existing node, an object defines a new node opened with the
 * parent), and attach it with @role, taking the permissions the parent's
 * driver asks for in child_perm.  With @allow_none a missing member
 * returns NULL without error; otherwise it fails with "A block device
 * must be specified for \"@member\"".  The child belongs to @parent and is
 * detached by the core after close() (or after a failed open()).  Main
 * loop, from the driver's open() only.
 */
BdChild *bd_node_open_child(BdNode *parent, JsonObject *options,
                            const char *member, BdChildRole role,
                            bool allow_none, GError **errp);

/*
 * Open a node from a BlockdevRef @ref outside any driver's open(), for
 * users that are not a parent node (a driver's co_create opening the
 * image it creates): a string names an existing node, which gets one
 * more reference; an object holds validated BlockdevOptions of a new
 * node (its node-name optional, generated when absent), opened with its
 * children.  Returns a reference the caller drops with bd_node_unref(),
 * or NULL with QEMU's message ("Cannot find device='X' nor
 * node-name='X'", the driver's open error).  Main loop; may be called
 * from a coroutine running in the main loop.
 */
BdNode *bd_node_open_ref(JsonNode *ref, GError **errp);

/*
 * Take one more reference to @node, so that it stays open while the
 * caller uses it (the graph holds its own for each parent, and the
 * monitor one for a blockdev-add node).  Main loop.
 */
void bd_node_ref(BdNode *node);

/*
 * Drop a reference taken with bd_node_ref() or returned by
 * bd_node_open_ref(); the last one drains, closes and frees the node
 * (and drops its children's).  Main loop; may be called from a coroutine
 * running in the main loop.
 */
void bd_node_unref(BdNode *node);

/* --- children ------------------------------------------------------------- */

/* The node a child points to.  Any thread. */
BdNode *bd_child_get_node(BdChild *child);

/* The child's name in its parent ("file", "backing", ...).  Any thread. */
const char *bd_child_get_name(BdChild *child);

/*
 * coroutine_fn, in the node's context: the I/O of a driver on its child.
 * Each goes through the child node's request layer, so alignment, zero
 * detection, read-only checks and statistics apply as for any request.
 * @qiov holds exactly @bytes bytes.  Returns 0 or a negative errno.
 */
bd_coroutine_fn
int bd_child_co_preadv(BdChild *child, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags);
bd_coroutine_fn
int bd_child_co_pwritev(BdChild *child, int64_t offset, int64_t bytes,
                        BdIOVector *qiov, BdRequestFlags flags);
/*
 * bd_blk_co_pread_to_fd() on the child node, for a driver's
 * co_pread_to_fd that passes the bytes through as they are (same
 * returns).
 */
bd_coroutine_fn
int64_t bd_child_co_pread_to_fd(BdChild *child, int64_t offset,
                                int64_t bytes, int out_fd,
                                BdRequestFlags flags);
/* Buffer variants of the two above. */
bd_coroutine_fn
int bd_child_co_pread(BdChild *child, int64_t offset, int64_t bytes,
                      void *buf, BdRequestFlags flags);
bd_coroutine_fn
int bd_child_co_pwrite(BdChild *child, int64_t offset, int64_t bytes,
                       const void *buf, BdRequestFlags flags);
/* Write zeroes (flags: MAY_UNMAP, NO_FALLBACK, FUA). */
bd_coroutine_fn
int bd_child_co_pwrite_zeroes(BdChild *child, int64_t offset, int64_t bytes,
                              BdRequestFlags flags);
/* Discard (a no-op success unless the child node has discard=unmap). */
bd_coroutine_fn
int bd_child_co_pdiscard(BdChild *child, int64_t offset, int64_t bytes);
/* Flush the child node and, recursively, its children. */
bd_coroutine_fn
int bd_child_co_flush(BdChild *child);
/*
 * The status of the range from @offset (at most @bytes) of the child
 * node: returns BD_BLOCK_* bits or a negative errno; *pnum is the length
 * with that status (> 0 unless at EOF), *map and *file (either may be
 * NULL) where the data lives when BD_BLOCK_OFFSET_VALID is set.  With
 * @want_zero false the answer may be coarser but cheaper.
 */
bd_coroutine_fn
int bd_child_co_block_status(BdChild *child, bool want_zero, int64_t offset,
                             int64_t bytes, int64_t *pnum, int64_t *map,
                             BdNode **file);
/* The child node's length in bytes, or a negative errno. */
bd_coroutine_fn
int64_t bd_child_co_getlength(BdChild *child);
/*
 * Resize the child node to @offset bytes (needs the RESIZE permission,
 * which the parent's child_perm must have asked for).  @exact: fail if
 * the size cannot be exactly @offset (else a larger size is fine when
 * shrinking is impossible).  Sets @errp on failure.
 */
bd_coroutine_fn
int bd_child_co_truncate(BdChild *child, int64_t offset, bool exact,
                         BdPreallocMode prealloc, BdRequestFlags flags,
                         GError **errp);
/*
 * Copy-on-read through the child (QEMU's BDRV_REQ_COPY_ON_READ, for a
 * copy-on-read filter): what the child node does not define itself in
 * the @bytes at @offset is read through it (from its backing chain) and
 * written into it unchanged.  Serialised against overlapping requests on
 * the node, so a newer write is neither lost nor overwritten.  Needs the
 * WRITE or WRITE_UNCHANGED permission on the edge (-EPERM otherwise).
 * 0 or a negative errno.
 */
bd_coroutine_fn
int bd_child_co_copy_on_read(BdChild *child, int64_t offset, int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_BLOCK_H */
