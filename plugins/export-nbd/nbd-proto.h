/*
 * export-nbd: the NBD protocol's wire format, and parsers that work on
 * buffers only (no I/O), so that every check a hostile client can reach
 * is unit-tested on its own (tests/unit/test-nbd-proto.c).
 *
 * All integers on the wire are big-endian.  The server side implemented
 * here is the fixed newstyle handshake as QEMU 7.2 speaks it, plus the
 * extended headers extension (NBD_OPT_EXTENDED_HEADERS: 32-byte requests
 * with 64-bit lengths, 32-byte reply headers, 64-bit block status
 * extents).
 */
#ifndef NBD_PROTO_H
#define NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* --- magic numbers ------------------------------------------------------ */

#define NBD_INIT_MAGIC              UINT64_C(0x4e42444d41474943) /* NBDMAGIC */
#define NBD_OPTS_MAGIC              UINT64_C(0x49484156454f5054) /* IHAVEOPT */
#define NBD_CLISERV_MAGIC           UINT64_C(0x00420281861253)   /* oldstyle */
#define NBD_REP_MAGIC               UINT64_C(0x3e889045565a9)
#define NBD_REQUEST_MAGIC           UINT32_C(0x25609513)
#define NBD_EXTENDED_REQUEST_MAGIC  UINT32_C(0x21e41c71)
#define NBD_SIMPLE_REPLY_MAGIC      UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC  UINT32_C(0x668e33ef)
#define NBD_EXTENDED_REPLY_MAGIC    UINT32_C(0x6e8a278c)

/* --- handshake flags (server, 16 bits) and client flags (32 bits) ------- */

#define NBD_FLAG_FIXED_NEWSTYLE     (1u << 0)
#define NBD_FLAG_NO_ZEROES          (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_C_NO_ZEROES        (1u << 1)

/* --- transmission flags (16 bits) --------------------------------------- */

#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_ROTATIONAL         (1u << 4)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_RESIZE        (1u << 9)
#define NBD_FLAG_SEND_CACHE         (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)
#define NBD_FLAG_BLOCK_STAT_PAYLOAD (1u << 12)

/* --- options ------------------------------------------------------------ */

#define NBD_OPT_EXPORT_NAME         1
#define NBD_OPT_ABORT               2
#define NBD_OPT_LIST                3
#define NBD_OPT_PEEK_EXPORT         4
#define NBD_OPT_STARTTLS            5
#define NBD_OPT_INFO                6
#define NBD_OPT_GO                  7
#define NBD_OPT_STRUCTURED_REPLY    8
#define NBD_OPT_LIST_META_CONTEXT   9
#define NBD_OPT_SET_META_CONTEXT    10
#define NBD_OPT_EXTENDED_HEADERS    11

/* --- option replies ----------------------------------------------------- */

#define NBD_REP_ACK                 1u
#define NBD_REP_SERVER              2u
#define NBD_REP_INFO                3u
#define NBD_REP_META_CONTEXT        4u
#define NBD_REP_ERR(v)              ((UINT32_C(1) << 31) | (v))
#define NBD_REP_ERR_UNSUP           NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY          NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID         NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM        NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD        NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN         NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN        NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG         NBD_REP_ERR(9)
#define NBD_REP_ERR_EXT_HEADER_REQD NBD_REP_ERR(10)

/* --- NBD_REP_INFO types ------------------------------------------------- */

#define NBD_INFO_EXPORT             0
#define NBD_INFO_NAME               1
#define NBD_INFO_DESCRIPTION        2
#define NBD_INFO_BLOCK_SIZE         3

/* --- commands and command flags ----------------------------------------- */

#define NBD_CMD_READ                0
#define NBD_CMD_WRITE               1
#define NBD_CMD_DISC                2
#define NBD_CMD_FLUSH               3
#define NBD_CMD_TRIM                4
#define NBD_CMD_CACHE               5
#define NBD_CMD_WRITE_ZEROES        6
#define NBD_CMD_BLOCK_STATUS        7
#define NBD_CMD_RESIZE              8

#define NBD_CMD_FLAG_FUA            (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE        (1u << 1)
#define NBD_CMD_FLAG_DF             (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE        (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO      (1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN    (1u << 5)

/* --- structured replies ------------------------------------------------- */

#define NBD_REPLY_FLAG_DONE         (1u << 0)

#define NBD_REPLY_TYPE_NONE              0
#define NBD_REPLY_TYPE_OFFSET_DATA       1
#define NBD_REPLY_TYPE_OFFSET_HOLE       2
#define NBD_REPLY_TYPE_BLOCK_STATUS      5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT  6
#define NBD_REPLY_TYPE_ERROR             ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET      ((1u << 15) + 2)

/* base:allocation flags of a block status extent */
#define NBD_STATE_HOLE              (1u << 0)
#define NBD_STATE_ZERO              (1u << 1)

/* --- error values ------------------------------------------------------- */

#define NBD_SUCCESS                 0
#define NBD_EPERM                   1
#define NBD_EIO                     5
#define NBD_ENOMEM                  12
#define NBD_EINVAL                  22
#define NBD_ENOSPC                  28
#define NBD_EOVERFLOW               75
#define NBD_ENOTSUP                 95
#define NBD_ESHUTDOWN               108

/* --- sizes -------------------------------------------------------------- */

/* Sizes of the fixed parts of each message on the wire. */
#define NBD_HANDSHAKE_LEN           18   /* NBDMAGIC, IHAVEOPT, flags */
#define NBD_OPTION_HEADER_LEN       16   /* IHAVEOPT, option, length */
#define NBD_OPTION_REPLY_LEN        20   /* magic, option, type, length */
#define NBD_REQUEST_LEN             28
#define NBD_EXTENDED_REQUEST_LEN    32
#define NBD_SIMPLE_REPLY_LEN        16
#define NBD_CHUNK_HEADER_LEN        20
#define NBD_EXTENDED_REPLY_LEN      32
#define NBD_EXPORT_NAME_REPLY_LEN   10   /* size, flags (zeroes follow) */
#define NBD_EXPORT_NAME_ZEROES      124

/* The largest READ/WRITE payload and option payload accepted (QEMU's). */
#define NBD_MAX_BUFFER_SIZE         (32u * 1024 * 1024)
/* The longest export name or metadata context query (the spec's). */
#define NBD_MAX_STRING_SIZE         4096
/* QEMU's preferred block size floor in NBD_INFO_BLOCK_SIZE. */
#define NBD_PREFERRED_BLOCK_SIZE    4096
/*
 * The largest option payload read into memory for NBD_OPT_INFO/GO: a
 * name of NBD_MAX_STRING_SIZE and 65535 info requests; anything longer
 * is invalid and skipped without being stored.
 */
#define NBD_MAX_INFO_OPTION_SIZE    (4 + NBD_MAX_STRING_SIZE + 2 + 65535 * 2)
/*
 * The largest metadata context option payload read into memory (room
 * for hundreds of queries); longer ones are skipped and answered
 * NBD_REP_ERR_TOO_BIG.
 */
#define NBD_MAX_META_OPTION_SIZE    (64u * 1024)
/* The metadata contexts, and their ids (QEMU's numbering). */
#define NBD_META_BASE_ALLOCATION    "base:allocation"
#define NBD_META_ID_BASE_ALLOCATION 0
#define NBD_META_ALLOCATION_DEPTH   "qemu:allocation-depth"
#define NBD_META_ID_ALLOCATION_DEPTH 1

/* --- big-endian helpers ------------------------------------------------- */

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline void nbd_put32(uint8_t *p, uint32_t v)
{
    nbd_put16(p, v >> 16);
    nbd_put16(p + 2, v);
}

static inline void nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, v >> 32);
    nbd_put32(p + 4, v);
}

static inline uint16_t nbd_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t nbd_get32(const uint8_t *p)
{
    return (uint32_t)nbd_get16(p) << 16 | nbd_get16(p + 2);
}

static inline uint64_t nbd_get64(const uint8_t *p)
{
    return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

/* --- names for messages --------------------------------------------------- */

/* The spec's name of option @opt ("NBD_OPT_GO"), or "unknown". */
const char *nbd_opt_name(uint32_t opt);
/* The spec's name of command @type ("NBD_CMD_READ"), or "unknown". */
const char *nbd_cmd_name(uint16_t type);

/* --- handshake ------------------------------------------------------------ */

/* Fill @buf with the server's greeting (NBDMAGIC, IHAVEOPT, flags). */
void nbd_build_greeting(uint8_t buf[NBD_HANDSHAKE_LEN]);

/*
 * Check the client's flags against what the greeting offered.  Sets
 * @no_zeroes; returns false (the connection must be dropped) on any bit
 * the server did not offer.  Clients without FIXED_NEWSTYLE are accepted
 * with @fixed false (they may only send NBD_OPT_EXPORT_NAME).
 */
bool nbd_parse_client_flags(uint32_t flags, bool *fixed, bool *no_zeroes,
                            GError **errp);

/*
 * Decode an option header.  Returns false on a bad magic; an option
 * length above NBD_MAX_BUFFER_SIZE is also refused (the server would
 * have to read it), so the caller hangs up either way.
 */
bool nbd_parse_option_header(const uint8_t buf[NBD_OPTION_HEADER_LEN],
                             uint32_t *option, uint32_t *length,
                             GError **errp);

/* Fill @buf with an option reply header for @len bytes of payload. */
void nbd_build_option_reply(uint8_t buf[NBD_OPTION_REPLY_LEN], uint32_t opt,
                            uint32_t type, uint32_t len);

/*
 * The payload of NBD_OPT_EXPORT_NAME: the whole payload is the name.
 * Fails (hang up: there is no error reply to this option) when it is
 * longer than NBD_MAX_STRING_SIZE.  *name is NUL-terminated.
 */
bool nbd_parse_export_name(const uint8_t *data, uint32_t len, char **name,
                           GError **errp);

/* What an NBD_OPT_INFO / NBD_OPT_GO payload asks for. */
typedef struct NbdInfoRequest {
    char *name;
    bool want_name;
    bool want_description;
    bool want_block_size;
} NbdInfoRequest;

void nbd_info_request_clear(NbdInfoRequest *req);

/*
 * Parse an INFO/GO payload (name length, name, request count, requests).
 * On failure the option is answered NBD_REP_ERR_INVALID with @errp's
 * message; the connection stays usable.  Unknown info types are ignored.
 */
bool nbd_parse_info_request(const uint8_t *data, uint32_t len,
                            NbdInfoRequest *req, GError **errp);

/* An NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT payload. */
typedef struct NbdMetaRequest {
    char *name;
    GPtrArray *queries;   /* of char *, NUL-terminated */
} NbdMetaRequest;

void nbd_meta_request_clear(NbdMetaRequest *req);

/*
 * Parse a meta context payload (name length, name, query count, then
 * length-prefixed queries).  A length that reaches past the payload, a
 * string over NBD_MAX_STRING_SIZE or bytes left over fail with
 * NBD_REP_ERR_INVALID's message.
 */
bool nbd_parse_meta_request(const uint8_t *data, uint32_t len,
                            NbdMetaRequest *req, GError **errp);

/*
 * Whether a meta request selects base:allocation.  For LIST (@list true)
 * no queries and the query "base:" select it too; SET needs the exact
 * name.  Queries of other namespaces select nothing.
 */
bool nbd_meta_selects_base_allocation(const NbdMetaRequest *req, bool list);

/*
 * Whether a meta request selects qemu:allocation-depth, for an export
 * that offers it.  QEMU's rules: for LIST no queries and the query
 * "qemu:" (the whole namespace) select it too; the exact name selects it
 * for both.
 */
bool nbd_meta_selects_allocation_depth(const NbdMetaRequest *req, bool list);

/* --- transmission ----------------------------------------------------------- */

/*
 * The transmission flags of an export: QEMU 7.2's choice.  @multi_conn
 * is whether the export may advertise CAN_MULTI_CONN; SEND_DF is added
 * per connection when structured replies were negotiated.
 */
uint16_t nbd_export_flags(bool read_only, bool multi_conn);

/* A decoded request header (compact or extended). */
typedef struct NbdRequest {
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint64_t len;
} NbdRequest;

/*
 * Decode a request header of NBD_REQUEST_LEN bytes (or, with @extended,
 * NBD_EXTENDED_REQUEST_LEN).  Fails on a wrong magic: the stream is then
 * out of sync and the connection must be dropped.
 */
bool nbd_parse_request(const uint8_t *buf, bool extended, NbdRequest *req,
                       GError **errp);

/* What the server knows when it checks a request. */
typedef struct NbdRequestLimits {
    uint64_t size;             /* export size */
    bool read_only;
    bool structured_reply;     /* structured replies or extended headers */
    bool extended;             /* extended headers were negotiated */
    bool base_allocation;      /* base:allocation was selected */
    bool allocation_depth;     /* qemu:allocation-depth was selected */
} NbdRequestLimits;

/*
 * Check a decoded request as QEMU 7.2 does, in its order.  Returns 0 if
 * it may run, else a negative errno for the error reply (with a message
 * in @errp).  *payload_len is the number of payload bytes that follow
 * the header on the wire (a WRITE's length) and that the caller must
 * read or skip before the next request.  When *fatal is set the request
 * cannot be answered and the stream resynchronised (a payload longer than
 * NBD_MAX_BUFFER_SIZE, which will not be read): reply, then hang up.
 * With extended headers a WRITE must carry NBD_CMD_FLAG_PAYLOAD_LEN; one
 * without it is tolerated (its length still taken as the payload's, as
 * QEMU 8.2 does).  On any other command the flag makes *len* a payload
 * length: the payload is skipped and the request refused with EINVAL
 * (NBD_FLAG_BLOCK_STAT_PAYLOAD is not offered).  NBD_CMD_DISC returns 0;
 * the caller closes.
 */
int nbd_check_request(const NbdRequest *req, const NbdRequestLimits *lim,
                      uint32_t *payload_len, bool *fatal, GError **errp);

/* NBD's error value for a negative (or positive) errno (QEMU's mapping). */
uint32_t nbd_errno_to_wire(int err);

/* Fill @buf with a simple reply header. */
void nbd_build_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_LEN], uint32_t error,
                            uint64_t cookie);

/* Fill @buf with a structured reply chunk header. */
void nbd_build_chunk_header(uint8_t buf[NBD_CHUNK_HEADER_LEN], uint16_t flags,
                            uint16_t type, uint64_t cookie, uint32_t len);

/*
 * Fill @buf with an extended reply header (extended headers: every reply
 * is one or more of these).  @offset is the request's offset.
 */
void nbd_build_extended_header(uint8_t buf[NBD_EXTENDED_REPLY_LEN],
                               uint16_t flags, uint16_t type,
                               uint64_t cookie, uint64_t offset,
                               uint64_t len);

#endif /* NBD_PROTO_H */
