/*
 * export-nbd: the handshake of a connection: the greeting, the client's
 * flags and the option haggling (NBD_OPT_*), up to NBD_OPT_GO or
 * NBD_OPT_EXPORT_NAME, with QEMU's replies.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "nbd-conn.h"
#include "nbd-proto.h"

/* --- negotiation ---------------------------------------------------------------- */

/* coroutine_fn: an option reply with an optional payload. */
static int send_rep(NbdClient *c, uint32_t opt, uint32_t type,
                    const void *data, uint32_t len)
{
    uint8_t hdr[NBD_OPTION_REPLY_LEN];
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)data, len } };

    nbd_build_option_reply(hdr, opt, type, len);
    return nbd_co_sendv(c, iov, len ? 2 : 1);
}

/* coroutine_fn: an error reply carrying a message. */
static int G_GNUC_PRINTF(4, 5) send_rep_err(NbdClient *c, uint32_t opt,
                                            uint32_t type, const char *fmt,
                                            ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return send_rep(c, opt, type, msg, strlen(msg));
}

/* coroutine_fn: NBD_REP_INFO of @type with @len bytes of @data. */
static int send_info(NbdClient *c, uint32_t opt, uint16_t type,
                     const void *data, uint32_t len)
{
    g_autofree uint8_t *buf = g_malloc(2 + len);

    nbd_put16(buf, type);
    memcpy(buf + 2, data, len);
    return send_rep(c, opt, NBD_REP_INFO, buf, 2 + len);
}

/*
 * coroutine_fn: NBD_OPT_STARTTLS, with QEMU's replies.  0: next option;
 * negative: hang up (a bad STARTTLS before TLS, or a failed handshake).
 */
static int handle_starttls(NbdClient *c, uint32_t opt, uint32_t len)
{
    g_autoptr(GError) err = NULL;
    int ret;

    if (len) {
        /* QEMU names the option by its short name here */
        ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                           "option 'starttls' has unexpected length");
        /* a client that cannot even start TLS right is not kept */
        return ret < 0 || (c->tls && !c->tls_active) ? -EINVAL : 0;
    }
    if (!c->tls) {
        return send_rep_err(c, opt, NBD_REP_ERR_POLICY, "TLS not configured");
    }
    if (c->tls_active) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                            "TLS already enabled");
    }
    ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    if (!nbd_tls_start(c->tls, &err)) {
        return -EIO;
    }
    while ((ret = nbd_tls_handshake(c->tls, &err)) == -EAGAIN) {
        ret = nbd_conn_wait_socket(c, nbd_tls_wants_write(c->tls));
        if (ret < 0) {
            return ret;
        }
    }
    if (ret < 0) {
        return -EIO;
    }
    c->tls_active = true;
    /*
     * The spec: nothing negotiated before a successful STARTTLS survives
     * it (structured replies, extended headers, metadata contexts).  With
     * TLS required every such option was refused until now; forgetting
     * keeps that true whatever changes in the option loop.
     */
    c->structured = false;
    c->extended = false;
    c->base_allocation = false;
    c->allocation_depth = false;
    g_clear_pointer(&c->meta_export, g_free);
    return 0;
}

static uint16_t client_flags(NbdClient *c, NbdExport *e)
{
    return e->flags | (c->structured ? NBD_FLAG_SEND_DF : 0);
}

/* coroutine_fn: answer INFO or GO.  1: go to transmission; 0: next option. */
static int handle_info(NbdClient *c, uint32_t opt, const uint8_t *data,
                       uint32_t len)
{
    g_autoptr(GError) err = NULL;
    NbdInfoRequest req;
    NbdExport *e;
    BdNode *node;
    uint32_t align;
    uint8_t buf[12];
    int ret;

    if (!nbd_parse_info_request(data, len, &req, &err)) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID, "%s", err->message);
    }
    e = nbd_export_lookup(req.name);
    if (!e) {
        ret = send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN,
                           "export '%s' not present", req.name);
        nbd_info_request_clear(&req);
        return ret;
    }
    ret = 0;
    if (req.want_name) {
        ret = send_info(c, opt, NBD_INFO_NAME, e->name, strlen(e->name));
    }
    if (ret == 0 && req.want_description && e->description) {
        ret = send_info(c, opt, NBD_INFO_DESCRIPTION, e->description,
                        strlen(e->description));
    }
    node = bd_blk_get_node(bd_export_get_blk(e->exp));
    align = node ? bd_node_get_request_alignment(node) : 512;
    if (ret == 0) {
        uint32_t max = node ? bd_node_get_max_transfer(node) : 0;

        /*
         * As QEMU: the minimum is the node's request alignment for a
         * client that promised to honour it (and for INFO), else 1 (the
         * request layer aligns whatever comes); preferred at least 4 KiB;
         * the maximum the node's transfer limit, rounded down to the
         * alignment, at most what the server reads in one request.
         */
        max = max ? MIN(max, INT32_MAX) : INT32_MAX;
        max -= max % align;
        nbd_put32(buf, opt == NBD_OPT_INFO || req.want_block_size ? align
                                                                   : 1);
        nbd_put32(buf + 4, MAX(NBD_PREFERRED_BLOCK_SIZE, nbd_get32(buf)));
        nbd_put32(buf + 8, MIN(max, NBD_MAX_BUFFER_SIZE));
        ret = send_info(c, opt, NBD_INFO_BLOCK_SIZE, buf, 12);
    }
    if (ret == 0) {
        nbd_put64(buf, e->size);
        nbd_put16(buf + 8, client_flags(c, e));
        ret = send_info(c, opt, NBD_INFO_EXPORT, buf, 10);
    }
    if (ret == 0 && opt == NBD_OPT_INFO && !req.want_block_size &&
        align > 1) {
        /* a client that ignores the alignment would be slow: say so */
        nbd_info_request_clear(&req);
        return send_rep_err(c, opt, NBD_REP_ERR_BLOCK_SIZE_REQD,
                            "request NBD_INFO_BLOCK_SIZE to use this export");
    }
    nbd_info_request_clear(&req);
    if (ret == 0) {
        ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
    }
    if (ret < 0) {
        return ret;
    }
    if (opt == NBD_OPT_GO) {
        c->exp = e;
        return 1;
    }
    return 0;
}

/* coroutine_fn: one NBD_REP_META_CONTEXT reply. */
static int send_meta_context(NbdClient *c, uint32_t opt, uint32_t id,
                             const char *name)
{
    size_t n = strlen(name);
    g_autofree uint8_t *buf = g_malloc(4 + n);

    /* a list selects nothing: its ids mean nothing and are 0, as QEMU's */
    nbd_put32(buf, opt == NBD_OPT_LIST_META_CONTEXT ? 0 : id);
    memcpy(buf + 4, name, n);
    return send_rep(c, opt, NBD_REP_META_CONTEXT, buf, 4 + n);
}

static int handle_meta(NbdClient *c, uint32_t opt, const uint8_t *data,
                       uint32_t len)
{
    g_autoptr(GError) err = NULL;
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    NbdMetaRequest req;
    NbdMetaBitmaps bitmaps;
    NbdExport *e;
    bool base, depth;
    int ret;

    if (!c->structured) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                            "request option '%s' when structured reply is "
                            "not negotiated", nbd_opt_name(opt));
    }
    if (!nbd_parse_meta_request(data, len, &req, &err)) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID, "%s", err->message);
    }
    e = nbd_export_lookup(req.name);
    if (!e) {
        ret = send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN,
                           "export '%s' not present", req.name);
        nbd_meta_request_clear(&req);
        return ret;
    }
    base = nbd_meta_selects_base_allocation(&req, list);
    depth = e->allocation_depth &&
            nbd_meta_selects_allocation_depth(&req, list);
    nbd_meta_select_bitmaps(e, &req, list, &bitmaps);
    if (!list) {
        c->base_allocation = base;
        c->allocation_depth = depth;
        nbd_meta_bitmaps_clear(&c->meta_bitmaps);
        c->meta_bitmaps = bitmaps;
        g_free(c->meta_export);
        c->meta_export = g_strdup(req.name);
    }
    nbd_meta_request_clear(&req);
    /* in id order, as QEMU */
    ret = 0;
    if (base) {
        ret = send_meta_context(c, opt, NBD_META_ID_BASE_ALLOCATION,
                                NBD_META_BASE_ALLOCATION);
    }
    if (ret == 0 && depth) {
        ret = send_meta_context(c, opt, NBD_META_ID_ALLOCATION_DEPTH,
                                NBD_META_ALLOCATION_DEPTH);
    }
    for (unsigned i = 0; ret >= 0 && i < bitmaps.nr; i++) {
        g_autofree char *name = NULL;
        g_autofree uint8_t *buf = NULL;
        size_t n;

        if (!bitmaps.sel[i]) {
            continue;
        }
        name = nbd_meta_bitmap_context(e, i);
        n = strlen(name);
        buf = g_malloc(4 + n);
        nbd_put32(buf, NBD_META_ID_DIRTY_BITMAP + i);
        memcpy(buf + 4, name, n);
        ret = send_rep(c, opt, NBD_REP_META_CONTEXT, buf, 4 + n);
    }
    if (list) {
        nbd_meta_bitmaps_clear(&bitmaps);
    }
    return ret < 0 ? ret : send_rep(c, opt, NBD_REP_ACK, NULL, 0);
}

static int handle_list(NbdClient *c, uint32_t opt)
{
    for (GList *l = nbd_export_list(); l; l = l->next) {
        NbdExport *e = l->data;
        size_t nlen = strlen(e->name);
        size_t dlen = e->description ? strlen(e->description) : 0;
        g_autofree uint8_t *buf = g_malloc(4 + nlen + dlen);
        int ret;

        nbd_put32(buf, nlen);
        memcpy(buf + 4, e->name, nlen);
        if (dlen) {
            memcpy(buf + 4 + nlen, e->description, dlen);
        }
        ret = send_rep(c, opt, NBD_REP_SERVER, buf, 4 + nlen + dlen);
        if (ret < 0) {
            return ret;
        }
    }
    return send_rep(c, opt, NBD_REP_ACK, NULL, 0);
}

/* Options whose payload is parsed, and so read into memory. */
static bool option_has_data(uint32_t opt)
{
    return opt == NBD_OPT_EXPORT_NAME || opt == NBD_OPT_INFO ||
           opt == NBD_OPT_GO || opt == NBD_OPT_LIST_META_CONTEXT ||
           opt == NBD_OPT_SET_META_CONTEXT;
}

/* The most payload of option @opt (option_has_data()) read into memory. */
static uint32_t option_max_len(uint32_t opt)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return NBD_MAX_STRING_SIZE;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return NBD_MAX_INFO_OPTION_SIZE;
    default:
        return NBD_MAX_META_OPTION_SIZE;
    }
}

/*
 * coroutine_fn: the handshake.  Returns 0 when the client entered the
 * transmission phase on c->exp, negative to hang up.
 */
int nbd_negotiate(NbdClient *c)
{
    uint8_t greeting[NBD_HANDSHAKE_LEN], b4[4];
    g_autoptr(GError) err = NULL;
    bool fixed, no_zeroes;
    int ret;

    nbd_build_greeting(greeting);
    ret = nbd_co_send(c, greeting, sizeof(greeting));
    if (ret == 0) {
        ret = nbd_co_recv(c, b4, 4);
    }
    if (ret < 0) {
        return ret;
    }
    if (!nbd_parse_client_flags(nbd_get32(b4), &fixed, &no_zeroes, &err)) {
        return -EINVAL;
    }

    for (;;) {
        uint8_t hdr[NBD_OPTION_HEADER_LEN];
        g_autofree uint8_t *data = NULL;
        uint32_t opt, len;

        ret = nbd_co_recv(c, hdr, sizeof(hdr));
        if (ret < 0) {
            return ret;
        }
        if (!nbd_parse_option_header(hdr, &opt, &len, &err)) {
            return -EINVAL;
        }
        if (!fixed && opt != NBD_OPT_EXPORT_NAME) {
            return -EINVAL;
        }
        if (opt == NBD_OPT_EXPORT_NAME && len > NBD_MAX_STRING_SIZE) {
            return -EINVAL;
        }
        if (option_has_data(opt) && len <= option_max_len(opt)) {
            data = g_malloc(len ? len : 1);
            ret = nbd_co_recv(c, data, len);
        } else {
            ret = nbd_co_skip(c, len);
        }
        if (ret < 0) {
            return ret;
        }
        if (nbd_conn_is_closing(c)) {
            send_rep_err(c, opt, NBD_REP_ERR_SHUTDOWN,
                         "Server is shutting down");
            return -ESHUTDOWN;
        }

        if (c->tls && !c->tls_active && opt != NBD_OPT_STARTTLS &&
            opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) {
                return -EINVAL;     /* it has no error reply */
            }
            ret = send_rep_err(c, opt, NBD_REP_ERR_TLS_REQD,
                               "Option 0x%" PRIx32 " not permitted before "
                               "TLS", opt);
            if (ret < 0) {
                return ret;
            }
            continue;
        }

        if (option_has_data(opt) && len > option_max_len(opt)) {
            /* not stored: a valid request is never that long */
            ret = send_rep_err(c, opt, opt == NBD_OPT_INFO ||
                                       opt == NBD_OPT_GO
                                       ? NBD_REP_ERR_INVALID
                                       : NBD_REP_ERR_TOO_BIG,
                               "option '%s' too long (%" PRIu32 " bytes)",
                               nbd_opt_name(opt), len);
            if (ret < 0) {
                return ret;
            }
            continue;
        }

        switch (opt) {
        case NBD_OPT_EXPORT_NAME: {
            g_autofree char *name = NULL;
            uint8_t reply[NBD_EXPORT_NAME_REPLY_LEN + NBD_EXPORT_NAME_ZEROES];
            NbdExport *e;

            if (c->extended) {
                /*
                 * The spec forbids this option once extended headers are
                 * on (only GO may follow), and it has no error reply.
                 */
                return -EINVAL;
            }
            if (!nbd_parse_export_name(data, len, &name, &err)) {
                return -EINVAL;
            }
            e = nbd_export_lookup(name);
            if (!e) {
                return -ENOENT;     /* no way to say so but hanging up */
            }
            memset(reply, 0, sizeof(reply));
            nbd_put64(reply, e->size);
            nbd_put16(reply + 8, client_flags(c, e));
            ret = nbd_co_send(c, reply, no_zeroes ? NBD_EXPORT_NAME_REPLY_LEN
                                              : sizeof(reply));
            if (ret < 0) {
                return ret;
            }
            c->exp = e;
            break;
        }
        case NBD_OPT_ABORT:
            send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            return -ECONNRESET;
        case NBD_OPT_LIST:
            ret = len ? send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                     "option '%s' has unexpected length",
                                     nbd_opt_name(opt))
                      : handle_list(c, opt);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            ret = handle_info(c, opt, data, len);
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "option '%s' has unexpected length",
                                   nbd_opt_name(opt));
            } else if (c->extended) {
                /* extended headers already imply structured replies */
                ret = send_rep_err(c, opt, NBD_REP_ERR_EXT_HEADER_REQD,
                                   "extended headers already negotiated");
            } else if (c->structured) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "structured reply already negotiated");
            } else {
                c->structured = true;
                ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_EXTENDED_HEADERS:
            if (len) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "option '%s' has unexpected length",
                                   nbd_opt_name(opt));
            } else if (c->extended) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "extended headers already negotiated");
            } else {
                /* valid after STRUCTURED_REPLY too: it supersedes it */
                c->extended = true;
                c->structured = true;
                ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            ret = handle_meta(c, opt, data, len);
            break;
        case NBD_OPT_STARTTLS:
            ret = handle_starttls(c, opt, len);
            break;
        default:
            ret = send_rep_err(c, opt, NBD_REP_ERR_UNSUP,
                               "Unsupported option %" PRIu32 " (%s)", opt,
                               nbd_opt_name(opt));
            break;
        }
        if (ret < 0) {
            return ret;
        }
        if (c->exp) {
            if (c->meta_export && strcmp(c->meta_export, c->exp->name)) {
                /* contexts were selected for another export */
                c->base_allocation = false;
                c->allocation_depth = false;
                nbd_meta_bitmaps_clear(&c->meta_bitmaps);
            }
            if (c->meta_bitmaps.nr != c->exp->nr_bitmaps) {
                /* an export of that name came and went since */
                nbd_meta_bitmaps_clear(&c->meta_bitmaps);
            }
            return 0;
        }
    }
}
