/*
 * export-nbd: NBD wire parsing and encoding on buffers (see nbd-proto.h).
 *
 * Nothing here does I/O or keeps state: the connection code reads a
 * bounded amount of data, hands it to these functions and acts on the
 * verdict, so every length and field a client controls is checked in one
 * place.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blockd/error.h>

#include "nbd-proto.h"

const char *nbd_opt_name(uint32_t opt)
{
    static const char *const names[] = {
        [NBD_OPT_EXPORT_NAME] = "NBD_OPT_EXPORT_NAME",
        [NBD_OPT_ABORT] = "NBD_OPT_ABORT",
        [NBD_OPT_LIST] = "NBD_OPT_LIST",
        [NBD_OPT_PEEK_EXPORT] = "NBD_OPT_PEEK_EXPORT",
        [NBD_OPT_STARTTLS] = "NBD_OPT_STARTTLS",
        [NBD_OPT_INFO] = "NBD_OPT_INFO",
        [NBD_OPT_GO] = "NBD_OPT_GO",
        [NBD_OPT_STRUCTURED_REPLY] = "NBD_OPT_STRUCTURED_REPLY",
        [NBD_OPT_LIST_META_CONTEXT] = "NBD_OPT_LIST_META_CONTEXT",
        [NBD_OPT_SET_META_CONTEXT] = "NBD_OPT_SET_META_CONTEXT",
        [NBD_OPT_EXTENDED_HEADERS] = "NBD_OPT_EXTENDED_HEADERS",
    };

    if (opt < G_N_ELEMENTS(names) && names[opt]) {
        return names[opt];
    }
    return "unknown";
}

const char *nbd_cmd_name(uint16_t type)
{
    static const char *const names[] = {
        [NBD_CMD_READ] = "NBD_CMD_READ",
        [NBD_CMD_WRITE] = "NBD_CMD_WRITE",
        [NBD_CMD_DISC] = "NBD_CMD_DISC",
        [NBD_CMD_FLUSH] = "NBD_CMD_FLUSH",
        [NBD_CMD_TRIM] = "NBD_CMD_TRIM",
        [NBD_CMD_CACHE] = "NBD_CMD_CACHE",
        [NBD_CMD_WRITE_ZEROES] = "NBD_CMD_WRITE_ZEROES",
        [NBD_CMD_BLOCK_STATUS] = "NBD_CMD_BLOCK_STATUS",
        [NBD_CMD_RESIZE] = "NBD_CMD_RESIZE",
    };

    if (type < G_N_ELEMENTS(names) && names[type]) {
        return names[type];
    }
    return "unknown";
}

void nbd_build_greeting(uint8_t buf[NBD_HANDSHAKE_LEN])
{
    nbd_put64(buf, NBD_INIT_MAGIC);
    nbd_put64(buf + 8, NBD_OPTS_MAGIC);
    nbd_put16(buf + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

bool nbd_parse_client_flags(uint32_t flags, bool *fixed, bool *no_zeroes,
                            GError **errp)
{
    *fixed = flags & NBD_FLAG_C_FIXED_NEWSTYLE;
    *no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
    flags &= ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    if (flags) {
        bd_error_setg(errp,
                      "Unknown client flags 0x%" PRIx32 " received", flags);
        return false;
    }
    return true;
}

bool nbd_parse_option_header(const uint8_t buf[NBD_OPTION_HEADER_LEN],
                             uint32_t *option, uint32_t *length,
                             GError **errp)
{
    if (nbd_get64(buf) != NBD_OPTS_MAGIC) {
        bd_error_setg(errp, "Bad option magic received");
        return false;
    }
    *option = nbd_get32(buf + 8);
    *length = nbd_get32(buf + 12);
    if (*length > NBD_MAX_BUFFER_SIZE) {
        bd_error_setg(errp, "len (%" PRIu32 ") is larger than max len (%u)",
                      *length, NBD_MAX_BUFFER_SIZE);
        return false;
    }
    return true;
}

void nbd_build_option_reply(uint8_t buf[NBD_OPTION_REPLY_LEN], uint32_t opt,
                            uint32_t type, uint32_t len)
{
    nbd_put64(buf, NBD_REP_MAGIC);
    nbd_put32(buf + 8, opt);
    nbd_put32(buf + 12, type);
    nbd_put32(buf + 16, len);
}

bool nbd_parse_export_name(const uint8_t *data, uint32_t len, char **name,
                           GError **errp)
{
    if (len > NBD_MAX_STRING_SIZE) {
        bd_error_setg(errp, "Bad length received");
        return false;
    }
    /* an empty name may come without a buffer */
    *name = len ? g_strndup((const char *)data, len) : g_strdup("");
    return true;
}

/* A cursor over an option payload; every take checks what is left. */
typedef struct Cursor {
    const uint8_t *p;
    uint32_t left;
} Cursor;

static bool take_u32(Cursor *c, uint32_t *v)
{
    if (c->left < 4) {
        return false;
    }
    *v = nbd_get32(c->p);
    c->p += 4;
    c->left -= 4;
    return true;
}

static bool take_u16(Cursor *c, uint16_t *v)
{
    if (c->left < 2) {
        return false;
    }
    *v = nbd_get16(c->p);
    c->p += 2;
    c->left -= 2;
    return true;
}

/* A string of @len bytes; NULL if it does not fit or is too long. */
static char *take_string(Cursor *c, uint32_t len, GError **errp,
                         const char *what)
{
    char *s;

    if (len > NBD_MAX_STRING_SIZE) {
        bd_error_setg(errp, "Invalid %s length: %" PRIu32, what, len);
        return NULL;
    }
    if (len > c->left) {
        bd_error_setg(errp,
                      "%s length %" PRIu32 " exceeds the option data", what,
                      len);
        return NULL;
    }
    s = g_strndup((const char *)c->p, len);
    if (strlen(s) != len) {
        bd_error_setg(errp, "%s contains a NUL byte", what);
        g_free(s);
        return NULL;
    }
    c->p += len;
    c->left -= len;
    return s;
}

void nbd_info_request_clear(NbdInfoRequest *req)
{
    g_clear_pointer(&req->name, g_free);
    req->want_name = req->want_description = req->want_block_size = false;
}

bool nbd_parse_info_request(const uint8_t *data, uint32_t len,
                            NbdInfoRequest *req, GError **errp)
{
    Cursor c = { data, len };
    uint32_t namelen;
    uint16_t count;

    memset(req, 0, sizeof(*req));
    if (!take_u32(&c, &namelen)) {
        bd_error_setg(errp, "Option data too short");
        return false;
    }
    req->name = take_string(&c, namelen, errp, "name");
    if (!req->name) {
        return false;
    }
    if (!take_u16(&c, &count)) {
        bd_error_setg(errp, "Option data too short");
        goto fail;
    }
    if (c.left != (uint32_t)count * 2) {
        bd_error_setg(errp,
                      "Request data too %s: %" PRIu16 " requests in %" PRIu32
                      " bytes",
                      c.left < (uint32_t)count * 2 ? "short" : "long", count,
                      c.left);
        goto fail;
    }
    for (unsigned i = 0; i < count; i++) {
        uint16_t type = 0;

        take_u16(&c, &type);
        switch (type) {
        case NBD_INFO_NAME:
            req->want_name = true;
            break;
        case NBD_INFO_DESCRIPTION:
            req->want_description = true;
            break;
        case NBD_INFO_BLOCK_SIZE:
            req->want_block_size = true;
            break;
        default:
            /* NBD_INFO_EXPORT is always sent; unknown types are ignored */
            break;
        }
    }
    return true;

fail:
    nbd_info_request_clear(req);
    return false;
}

void nbd_meta_request_clear(NbdMetaRequest *req)
{
    g_clear_pointer(&req->name, g_free);
    g_clear_pointer(&req->queries, g_ptr_array_unref);
}

bool nbd_parse_meta_request(const uint8_t *data, uint32_t len,
                            NbdMetaRequest *req, GError **errp)
{
    Cursor c = { data, len };
    uint32_t namelen, count;

    memset(req, 0, sizeof(*req));
    req->queries = g_ptr_array_new_with_free_func(g_free);
    if (!take_u32(&c, &namelen)) {
        bd_error_setg(errp, "Option data too short");
        goto fail;
    }
    req->name = take_string(&c, namelen, errp, "export name");
    if (!req->name) {
        goto fail;
    }
    if (!take_u32(&c, &count)) {
        bd_error_setg(errp, "Option data too short");
        goto fail;
    }
    /* each query needs at least its 4-byte length: bound the loop first */
    if (count > c.left / 4) {
        bd_error_setg(errp,
                      "%" PRIu32 " queries do not fit in the option data",
                      count);
        goto fail;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t qlen;
        char *q;

        if (!take_u32(&c, &qlen)) {
            bd_error_setg(errp, "Option data too short");
            goto fail;
        }
        q = take_string(&c, qlen, errp, "query");
        if (!q) {
            goto fail;
        }
        g_ptr_array_add(req->queries, q);
    }
    if (c.left) {
        bd_error_setg(errp, "%" PRIu32 " unexpected bytes after the queries",
                      c.left);
        goto fail;
    }
    return true;

fail:
    nbd_meta_request_clear(req);
    return false;
}

bool nbd_meta_selects_base_allocation(const NbdMetaRequest *req, bool list)
{
    if (req->queries->len == 0) {
        return list;
    }
    for (guint i = 0; i < req->queries->len; i++) {
        const char *q = g_ptr_array_index(req->queries, i);

        if (strcmp(q, NBD_META_BASE_ALLOCATION) == 0 ||
            (list && strcmp(q, "base:") == 0)) {
            return true;
        }
    }
    return false;
}

bool nbd_meta_selects_allocation_depth(const NbdMetaRequest *req, bool list)
{
    if (req->queries->len == 0) {
        return list;
    }
    for (guint i = 0; i < req->queries->len; i++) {
        const char *q = g_ptr_array_index(req->queries, i);

        if (strcmp(q, NBD_META_ALLOCATION_DEPTH) == 0 ||
            (list && strcmp(q, "qemu:") == 0)) {
            return true;
        }
    }
    return false;
}

uint16_t nbd_export_flags(bool read_only, bool multi_conn)
{
    uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                     NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;

    if (read_only) {
        flags |= NBD_FLAG_READ_ONLY;
    } else {
        flags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                 NBD_FLAG_SEND_FAST_ZERO;
    }
    if (multi_conn) {
        flags |= NBD_FLAG_CAN_MULTI_CONN;
    }
    return flags;
}

bool nbd_parse_request(const uint8_t *buf, bool extended, NbdRequest *req,
                       GError **errp)
{
    uint32_t magic = nbd_get32(buf);
    uint32_t want = extended ? NBD_EXTENDED_REQUEST_MAGIC : NBD_REQUEST_MAGIC;

    if (magic != want) {
        bd_error_setg(errp, "invalid magic (got 0x%" PRIx32 ")", magic);
        return false;
    }
    req->flags = nbd_get16(buf + 4);
    req->type = nbd_get16(buf + 6);
    req->cookie = nbd_get64(buf + 8);
    req->offset = nbd_get64(buf + 16);
    req->len = extended ? nbd_get64(buf + 24) : nbd_get32(buf + 24);
    return true;
}

static bool is_write_like(uint16_t type)
{
    return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ||
           type == NBD_CMD_TRIM;
}

int nbd_check_request(const NbdRequest *req, const NbdRequestLimits *lim,
                      uint32_t *payload_len, bool *fatal, GError **errp)
{
    uint16_t valid_flags = NBD_CMD_FLAG_FUA;

    *fatal = false;
    *payload_len = 0;

    if (req->type == NBD_CMD_DISC) {
        return 0;
    }
    if (lim->extended && (req->flags & NBD_CMD_FLAG_PAYLOAD_LEN) &&
        req->type != NBD_CMD_WRITE) {
        /* len is the length of a payload this server takes for no command */
        if (req->len > NBD_MAX_BUFFER_SIZE) {
            bd_error_setg(errp,
                          "payload len (%" PRIu64 ") is larger than max len "
                          "(%u)", req->len, NBD_MAX_BUFFER_SIZE);
            *fatal = true;
            return -EINVAL;
        }
        *payload_len = (uint32_t)req->len;
        bd_error_setg(errp, "unexpected payload for command %s",
                      nbd_cmd_name(req->type));
        return -EINVAL;
    }
    if (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) {
        if (req->len > NBD_MAX_BUFFER_SIZE) {
            bd_error_setg(errp,
                          "len (%" PRIu64 ") is larger than max len (%u)",
                          req->len, NBD_MAX_BUFFER_SIZE);
            /* a write's payload is not read: the stream is lost */
            *fatal = req->type == NBD_CMD_WRITE;
            return -EINVAL;
        }
        if (req->type == NBD_CMD_WRITE) {
            *payload_len = (uint32_t)req->len;
        }
    }
    if (req->type > NBD_CMD_BLOCK_STATUS) {
        bd_error_setg(errp, "invalid request type (%" PRIu16 ") received",
                      req->type);
        return -EINVAL;
    }
    if (lim->read_only && is_write_like(req->type)) {
        bd_error_setg(errp, "Export is read-only");
        return -EROFS;
    }
    if (req->offset > lim->size || req->len > lim->size - req->offset) {
        bd_error_setg(errp,
                      "operation past EOF; From: %" PRIu64 ", Len: %" PRIu64
                      ", Size: %" PRIu64, req->offset, req->len, lim->size);
        return (req->type == NBD_CMD_WRITE ||
                req->type == NBD_CMD_WRITE_ZEROES) ? -ENOSPC : -EINVAL;
    }
    if (req->type == NBD_CMD_WRITE && lim->extended) {
        valid_flags |= NBD_CMD_FLAG_PAYLOAD_LEN;
    }
    if (req->type == NBD_CMD_READ && lim->structured_reply) {
        valid_flags |= NBD_CMD_FLAG_DF;
    } else if (req->type == NBD_CMD_WRITE_ZEROES) {
        valid_flags |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    } else if (req->type == NBD_CMD_BLOCK_STATUS) {
        valid_flags |= NBD_CMD_FLAG_REQ_ONE;
    }
    if (req->flags & ~valid_flags) {
        bd_error_setg(errp,
                      "unsupported flags for command %s (got 0x%" PRIx16 ")",
                      nbd_cmd_name(req->type), req->flags);
        return -EINVAL;
    }
    if (req->type == NBD_CMD_BLOCK_STATUS) {
        if (!req->len) {
            bd_error_setg(errp, "need non-zero length");
            return -EINVAL;
        }
        if (!lim->base_allocation && !lim->allocation_depth) {
            bd_error_setg(errp, "CMD_BLOCK_STATUS not negotiated");
            return -EINVAL;
        }
    }
    return 0;
}

uint32_t nbd_errno_to_wire(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return NBD_SUCCESS;
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case EIO:
        return NBD_EIO;
    case ENOMEM:
        return NBD_ENOMEM;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG:
    case ENOSPC:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    case EINVAL:
    default:
        return NBD_EINVAL;
    }
}

void nbd_build_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_LEN], uint32_t error,
                            uint64_t cookie)
{
    nbd_put32(buf, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(buf + 4, error);
    nbd_put64(buf + 8, cookie);
}

void nbd_build_chunk_header(uint8_t buf[NBD_CHUNK_HEADER_LEN], uint16_t flags,
                            uint16_t type, uint64_t cookie, uint32_t len)
{
    nbd_put32(buf, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16(buf + 4, flags);
    nbd_put16(buf + 6, type);
    nbd_put64(buf + 8, cookie);
    nbd_put32(buf + 16, len);
}

void nbd_build_extended_header(uint8_t buf[NBD_EXTENDED_REPLY_LEN],
                               uint16_t flags, uint16_t type,
                               uint64_t cookie, uint64_t offset,
                               uint64_t len)
{
    nbd_put32(buf, NBD_EXTENDED_REPLY_MAGIC);
    nbd_put16(buf + 4, flags);
    nbd_put16(buf + 6, type);
    nbd_put64(buf + 8, cookie);
    nbd_put64(buf + 16, offset);
    nbd_put64(buf + 24, len);
}
