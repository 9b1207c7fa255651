/*
 * Unit tests of export-nbd's wire parsers (plugins/export-nbd/nbd-proto.c),
 * mostly with what a hostile or broken client could send: wrong magics,
 * lengths that point past the data, counts that would make the server
 * loop or allocate without bound, requests past the end of the export.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "../../plugins/export-nbd/nbd-proto.h"

static void test_endian(void)
{
    uint8_t b[8];

    nbd_put64(b, UINT64_C(0x0102030405060708));
    g_assert_cmpint(b[0], ==, 1);
    g_assert_cmpint(b[7], ==, 8);
    g_assert_cmphex(nbd_get64(b), ==, UINT64_C(0x0102030405060708));
    g_assert_cmphex(nbd_get32(b + 4), ==, 0x05060708);
    g_assert_cmphex(nbd_get16(b + 6), ==, 0x0708);
    nbd_put64(b, UINT64_MAX);
    g_assert_cmphex(nbd_get64(b), ==, UINT64_MAX);
}

static void test_greeting(void)
{
    uint8_t b[NBD_HANDSHAKE_LEN];

    nbd_build_greeting(b);
    g_assert_cmpmem(b, 8, "NBDMAGIC", 8);
    g_assert_cmpmem(b + 8, 8, "IHAVEOPT", 8);
    g_assert_cmphex(nbd_get16(b + 16), ==, 3);
}

static void test_client_flags(void)
{
    GError *err = NULL;
    bool fixed, nz;

    g_assert_true(nbd_parse_client_flags(3, &fixed, &nz, &err));
    g_assert_true(fixed && nz);
    g_assert_true(nbd_parse_client_flags(0, &fixed, &nz, &err));
    g_assert_false(fixed || nz);
    g_assert_false(nbd_parse_client_flags(4, &fixed, &nz, &err));
    g_assert_cmpstr(err->message, ==, "Unknown client flags 0x4 received");
    g_clear_error(&err);
    g_assert_false(nbd_parse_client_flags(UINT32_MAX, &fixed, &nz, &err));
    g_clear_error(&err);
}

static void test_option_header(void)
{
    uint8_t b[NBD_OPTION_HEADER_LEN];
    GError *err = NULL;
    uint32_t opt, len;

    nbd_put64(b, NBD_OPTS_MAGIC);
    nbd_put32(b + 8, NBD_OPT_GO);
    nbd_put32(b + 12, 7);
    g_assert_true(nbd_parse_option_header(b, &opt, &len, &err));
    g_assert_cmpuint(opt, ==, NBD_OPT_GO);
    g_assert_cmpuint(len, ==, 7);

    /* the largest payload the server will read, and one more */
    nbd_put32(b + 12, NBD_MAX_BUFFER_SIZE);
    g_assert_true(nbd_parse_option_header(b, &opt, &len, &err));
    nbd_put32(b + 12, NBD_MAX_BUFFER_SIZE + 1);
    g_assert_false(nbd_parse_option_header(b, &opt, &len, &err));
    g_clear_error(&err);
    nbd_put32(b + 12, UINT32_MAX);
    g_assert_false(nbd_parse_option_header(b, &opt, &len, &err));
    g_clear_error(&err);

    /* a request header where an option belongs */
    nbd_put32(b, NBD_REQUEST_MAGIC);
    nbd_put32(b + 12, 0);
    g_assert_false(nbd_parse_option_header(b, &opt, &len, &err));
    g_assert_cmpstr(err->message, ==, "Bad option magic received");
    g_clear_error(&err);
}

static void test_option_reply(void)
{
    uint8_t b[NBD_OPTION_REPLY_LEN];

    nbd_build_option_reply(b, NBD_OPT_LIST, NBD_REP_ERR_UNSUP, 5);
    g_assert_cmphex(nbd_get64(b), ==, NBD_REP_MAGIC);
    g_assert_cmpuint(nbd_get32(b + 8), ==, NBD_OPT_LIST);
    g_assert_cmphex(nbd_get32(b + 12), ==, 0x80000001u);
    g_assert_cmpuint(nbd_get32(b + 16), ==, 5);
    g_assert_cmphex(NBD_REP_ERR_EXT_HEADER_REQD, ==, 0x8000000au);
}

static void test_export_name(void)
{
    g_autofree uint8_t *big = g_malloc0(NBD_MAX_STRING_SIZE + 1);
    GError *err = NULL;
    char *name = NULL;

    g_assert_true(nbd_parse_export_name((const uint8_t *)"disk", 4, &name,
                                        &err));
    g_assert_cmpstr(name, ==, "disk");
    g_free(name);
    g_assert_true(nbd_parse_export_name(NULL, 0, &name, &err));
    g_assert_cmpstr(name, ==, "");
    g_free(name);
    memset(big, 'a', NBD_MAX_STRING_SIZE + 1);
    g_assert_true(nbd_parse_export_name(big, NBD_MAX_STRING_SIZE, &name,
                                        &err));
    g_assert_cmpuint(strlen(name), ==, NBD_MAX_STRING_SIZE);
    g_free(name);
    g_assert_false(nbd_parse_export_name(big, NBD_MAX_STRING_SIZE + 1, &name,
                                         &err));
    g_clear_error(&err);
}

/* Build an INFO/GO payload: name, then @n request types. */
static GByteArray *info_payload(const char *name, uint32_t namelen_field,
                                uint16_t count, const uint16_t *types,
                                unsigned ntypes)
{
    GByteArray *a = g_byte_array_new();
    uint8_t b[4];

    nbd_put32(b, namelen_field);
    g_byte_array_append(a, b, 4);
    g_byte_array_append(a, (const guint8 *)name, strlen(name));
    nbd_put16(b, count);
    g_byte_array_append(a, b, 2);
    for (unsigned i = 0; i < ntypes; i++) {
        nbd_put16(b, types[i]);
        g_byte_array_append(a, b, 2);
    }
    return a;
}

static void test_info_request(void)
{
    static const uint16_t all[] = {
        NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE, 0x7777, NBD_INFO_DESCRIPTION,
    };
    NbdInfoRequest req;
    GError *err = NULL;
    GByteArray *a;

    a = info_payload("exp", 3, 4, all, 4);
    g_assert_true(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_cmpstr(req.name, ==, "exp");
    g_assert_true(req.want_name && req.want_block_size &&
                  req.want_description);
    nbd_info_request_clear(&req);
    g_byte_array_unref(a);

    a = info_payload("", 0, 0, NULL, 0);
    g_assert_true(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_cmpstr(req.name, ==, "");
    g_assert_false(req.want_name || req.want_block_size);
    nbd_info_request_clear(&req);
    g_byte_array_unref(a);

    /* name length beyond the payload, huge, or count not matching */
    a = info_payload("exp", 300, 0, NULL, 0);
    g_assert_false(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_null(req.name);
    g_clear_error(&err);
    g_byte_array_unref(a);
    a = info_payload("exp", UINT32_MAX, 0, NULL, 0);
    g_assert_false(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_cmpstr(err->message, ==, "Invalid name length: 4294967295");
    g_clear_error(&err);
    g_byte_array_unref(a);
    a = info_payload("exp", 3, 5, all, 4);
    g_assert_false(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_nonnull(strstr(err->message, "too short"));
    g_clear_error(&err);
    g_byte_array_unref(a);
    a = info_payload("exp", 3, 1, all, 4);
    g_assert_false(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_assert_nonnull(strstr(err->message, "too long"));
    g_clear_error(&err);
    g_byte_array_unref(a);
    a = info_payload("exp", 3, 65535, all, 4);
    g_assert_false(nbd_parse_info_request(a->data, a->len, &req, &err));
    g_clear_error(&err);
    g_byte_array_unref(a);

    /* every truncation of a valid payload fails cleanly */
    a = info_payload("exp", 3, 4, all, 4);
    for (guint cut = 0; cut < a->len; cut++) {
        g_assert_false(nbd_parse_info_request(a->data, cut, &req, &err));
        g_assert_null(req.name);
        g_clear_error(&err);
    }
    g_byte_array_unref(a);

    /* an embedded NUL in the name */
    {
        static const uint8_t nul[] = { 0, 0, 0, 3, 'e', 0, 'p', 0, 0 };

        g_assert_false(nbd_parse_info_request(nul, sizeof(nul), &req, &err));
        g_assert_null(req.name);
        g_clear_error(&err);
    }
}

static GByteArray *meta_payload(const char *name, uint32_t count,
                                const char *const *queries, unsigned nq)
{
    GByteArray *a = g_byte_array_new();
    uint8_t b[4];

    nbd_put32(b, strlen(name));
    g_byte_array_append(a, b, 4);
    g_byte_array_append(a, (const guint8 *)name, strlen(name));
    nbd_put32(b, count);
    g_byte_array_append(a, b, 4);
    for (unsigned i = 0; i < nq; i++) {
        nbd_put32(b, strlen(queries[i]));
        g_byte_array_append(a, b, 4);
        g_byte_array_append(a, (const guint8 *)queries[i],
                            strlen(queries[i]));
    }
    return a;
}

static void test_meta_request(void)
{
    static const char *const q1[] = { "qemu:dirty-bitmap:x",
                                      "base:allocation" };
    static const char *const q2[] = { "base:" };
    static const char *const q3[] = { "other:thing" };
    NbdMetaRequest req;
    GError *err = NULL;
    GByteArray *a;

    a = meta_payload("exp", 2, q1, 2);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_cmpstr(req.name, ==, "exp");
    g_assert_cmpuint(req.queries->len, ==, 2);
    g_assert_true(nbd_meta_selects_base_allocation(&req, false));
    g_assert_true(nbd_meta_selects_base_allocation(&req, true));
    nbd_meta_request_clear(&req);

    /* every truncation fails; a trailing byte fails */
    for (guint cut = 0; cut < a->len; cut++) {
        g_assert_false(nbd_parse_meta_request(a->data, cut, &req, &err));
        g_assert_null(req.name);
        g_assert_null(req.queries);
        g_clear_error(&err);
    }
    g_byte_array_append(a, (const guint8 *)"x", 1);
    g_assert_false(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_clear_error(&err);
    g_byte_array_unref(a);

    /* a huge count must not make the parser loop or allocate */
    a = meta_payload("exp", UINT32_MAX, q1, 2);
    g_assert_false(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_clear_error(&err);
    g_byte_array_unref(a);

    /* no queries: LIST lists everything, SET selects nothing */
    a = meta_payload("exp", 0, NULL, 0);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_true(nbd_meta_selects_base_allocation(&req, true));
    g_assert_false(nbd_meta_selects_base_allocation(&req, false));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);

    a = meta_payload("exp", 1, q2, 1);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_true(nbd_meta_selects_base_allocation(&req, true));
    g_assert_false(nbd_meta_selects_base_allocation(&req, false));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);

    a = meta_payload("exp", 1, q3, 1);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_false(nbd_meta_selects_base_allocation(&req, true));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);
}

static void test_export_flags(void)
{
    uint16_t ro = nbd_export_flags(true, true);
    uint16_t rw = nbd_export_flags(false, false);

    g_assert_cmphex(ro, ==, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY |
                    NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                    NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN);
    g_assert_cmphex(rw, ==, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                    NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE |
                    NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                    NBD_FLAG_SEND_FAST_ZERO);
    g_assert_cmphex(0x0d6d, ==, 0x0d6d & (rw | NBD_FLAG_SEND_DF |
                                          NBD_FLAG_CAN_MULTI_CONN));
}

static void make_request(uint8_t *b, uint32_t magic, uint16_t flags,
                         uint16_t type, uint64_t cookie, uint64_t off,
                         uint32_t len)
{
    nbd_put32(b, magic);
    nbd_put16(b + 4, flags);
    nbd_put16(b + 6, type);
    nbd_put64(b + 8, cookie);
    nbd_put64(b + 16, off);
    nbd_put32(b + 24, len);
}

static void test_parse_request(void)
{
    uint8_t b[NBD_EXTENDED_REQUEST_LEN];
    GError *err = NULL;
    NbdRequest r;

    make_request(b, NBD_REQUEST_MAGIC, 1, NBD_CMD_WRITE, 0xfeedULL, 4096,
                 512);
    g_assert_true(nbd_parse_request(b, false, &r, &err));
    g_assert_cmpuint(r.flags, ==, 1);
    g_assert_cmpuint(r.type, ==, NBD_CMD_WRITE);
    g_assert_cmphex(r.cookie, ==, 0xfeed);
    g_assert_cmpuint(r.offset, ==, 4096);
    g_assert_cmpuint(r.len, ==, 512);

    /* the historic magic, the extended magic where compact is expected */
    make_request(b, 0x12560953, 0, 0, 0, 0, 0);
    g_assert_false(nbd_parse_request(b, false, &r, &err));
    g_assert_cmpstr(err->message, ==, "invalid magic (got 0x12560953)");
    g_clear_error(&err);
    make_request(b, NBD_EXTENDED_REQUEST_MAGIC, 0, 0, 0, 0, 0);
    g_assert_false(nbd_parse_request(b, false, &r, &err));
    g_clear_error(&err);

    /* extended: 64-bit length */
    make_request(b, NBD_EXTENDED_REQUEST_MAGIC, 0, NBD_CMD_TRIM, 1, 2, 0);
    nbd_put64(b + 24, UINT64_C(1) << 40);
    g_assert_true(nbd_parse_request(b, true, &r, &err));
    g_assert_cmpuint(r.len, ==, UINT64_C(1) << 40);
}

static int check(uint16_t flags, uint16_t type, uint64_t off, uint64_t len,
                 const NbdRequestLimits *lim, uint32_t *payload, bool *fatal)
{
    NbdRequest r = { flags, type, 7, off, len };
    GError *err = NULL;
    int ret = nbd_check_request(&r, lim, payload, fatal, &err);

    g_assert_true((ret == 0) == (err == NULL));
    g_clear_error(&err);
    return ret;
}

static void test_check_request(void)
{
    NbdRequestLimits rw = { .size = 1 << 20, .structured_reply = true,
                            .base_allocation = true };
    NbdRequestLimits ro = { .size = 1 << 20, .read_only = true };
    uint32_t payload;
    bool fatal;

    g_assert_cmpint(check(0, NBD_CMD_READ, 0, 1 << 20, &rw, &payload,
                          &fatal), ==, 0);
    g_assert_cmpint(check(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 512, 512, &rw,
                          &payload, &fatal), ==, 0);
    g_assert_cmpuint(payload, ==, 512);
    g_assert_false(fatal);

    /* past the end, wrapping around, at the very end */
    g_assert_cmpint(check(0, NBD_CMD_READ, 1 << 20, 1, &rw, &payload,
                          &fatal), ==, -EINVAL);
    g_assert_cmpint(check(0, NBD_CMD_READ, 1 << 20, 0, &rw, &payload,
                          &fatal), ==, 0);
    g_assert_cmpint(check(0, NBD_CMD_READ, UINT64_MAX, 2, &rw, &payload,
                          &fatal), ==, -EINVAL);
    g_assert_cmpint(check(0, NBD_CMD_WRITE, (1 << 20) - 1, 2, &rw, &payload,
                          &fatal), ==, -ENOSPC);
    /* the write's payload is still to be read: not fatal */
    g_assert_cmpuint(payload, ==, 2);
    g_assert_false(fatal);
    g_assert_cmpint(check(0, NBD_CMD_WRITE_ZEROES, UINT64_MAX, 1, &rw,
                          &payload, &fatal), ==, -ENOSPC);
    g_assert_cmpint(check(0, NBD_CMD_TRIM, 0, (1 << 20) + 1, &rw, &payload,
                          &fatal), ==, -EINVAL);

    /* oversized: a read is answered, a write ends the connection */
    g_assert_cmpint(check(0, NBD_CMD_READ, 0, NBD_MAX_BUFFER_SIZE + 1, &rw,
                          &payload, &fatal), ==, -EINVAL);
    g_assert_false(fatal);
    g_assert_cmpint(check(0, NBD_CMD_WRITE, 0, UINT32_MAX, &rw, &payload,
                          &fatal), ==, -EINVAL);
    g_assert_true(fatal);
    g_assert_cmpuint(payload, ==, 0);

    /* writes to a read-only export; flags per command */
    g_assert_cmpint(check(0, NBD_CMD_WRITE, 0, 512, &ro, &payload, &fatal),
                    ==, -EROFS);
    g_assert_cmpuint(payload, ==, 512);
    g_assert_cmpint(check(0, NBD_CMD_TRIM, 0, 512, &ro, &payload, &fatal),
                    ==, -EROFS);
    g_assert_cmpint(check(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 512, &ro,
                          &payload, &fatal), ==, -EINVAL);
    g_assert_cmpint(check(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 512, &rw,
                          &payload, &fatal), ==, 0);
    g_assert_cmpint(check(NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
                          NBD_CMD_WRITE_ZEROES, 0, 512, &rw, &payload,
                          &fatal), ==, 0);
    g_assert_cmpint(check(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 0, 512, &rw,
                          &payload, &fatal), ==, -EINVAL);
    g_assert_cmpint(check(0xffff, NBD_CMD_FLUSH, 0, 0, &rw, &payload,
                          &fatal), ==, -EINVAL);
    g_assert_cmpint(check(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 0, 1,
                          &rw, &payload, &fatal), ==, 0);

    /* block status: needs a length and a negotiated context */
    g_assert_cmpint(check(0, NBD_CMD_BLOCK_STATUS, 0, 0, &rw, &payload,
                          &fatal), ==, -EINVAL);
    g_assert_cmpint(check(0, NBD_CMD_BLOCK_STATUS, 0, 1, &ro, &payload,
                          &fatal), ==, -EINVAL);

    /* unknown commands are answered, not fatal */
    g_assert_cmpint(check(0, NBD_CMD_RESIZE, 0, 0, &rw, &payload, &fatal),
                    ==, -EINVAL);
    g_assert_cmpint(check(0, 0xffff, 0, 0, &rw, &payload, &fatal), ==,
                    -EINVAL);
    g_assert_false(fatal);
    g_assert_cmpint(check(0, NBD_CMD_DISC, UINT64_MAX, UINT32_MAX, &rw,
                          &payload, &fatal), ==, 0);
}

static void test_errno_map(void)
{
    g_assert_cmpuint(nbd_errno_to_wire(0), ==, 0);
    g_assert_cmpuint(nbd_errno_to_wire(-EROFS), ==, NBD_EPERM);
    g_assert_cmpuint(nbd_errno_to_wire(-EPERM), ==, NBD_EPERM);
    g_assert_cmpuint(nbd_errno_to_wire(-EIO), ==, NBD_EIO);
    g_assert_cmpuint(nbd_errno_to_wire(-ENOMEM), ==, NBD_ENOMEM);
    g_assert_cmpuint(nbd_errno_to_wire(-EFBIG), ==, NBD_ENOSPC);
    g_assert_cmpuint(nbd_errno_to_wire(-ENOSPC), ==, NBD_ENOSPC);
    g_assert_cmpuint(nbd_errno_to_wire(-EOVERFLOW), ==, NBD_EOVERFLOW);
    g_assert_cmpuint(nbd_errno_to_wire(-ENOTSUP), ==, NBD_ENOTSUP);
    g_assert_cmpuint(nbd_errno_to_wire(-ESHUTDOWN), ==, NBD_ESHUTDOWN);
    g_assert_cmpuint(nbd_errno_to_wire(-EBADF), ==, NBD_EINVAL);
    g_assert_cmpuint(nbd_errno_to_wire(ENOSPC), ==, NBD_ENOSPC);
}

static void test_reply_headers(void)
{
    uint8_t s[NBD_SIMPLE_REPLY_LEN], c[NBD_CHUNK_HEADER_LEN];

    nbd_build_simple_reply(s, NBD_EIO, UINT64_MAX);
    g_assert_cmphex(nbd_get32(s), ==, 0x67446698);
    g_assert_cmpuint(nbd_get32(s + 4), ==, 5);
    g_assert_cmphex(nbd_get64(s + 8), ==, UINT64_MAX);
    nbd_build_chunk_header(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 9,
                           6);
    g_assert_cmphex(nbd_get32(c), ==, 0x668e33ef);
    g_assert_cmpuint(nbd_get16(c + 4), ==, 1);
    g_assert_cmpuint(nbd_get16(c + 6), ==, 32769);
    g_assert_cmpuint(nbd_get64(c + 8), ==, 9);
    g_assert_cmpuint(nbd_get32(c + 16), ==, 6);
}

static void test_names(void)
{
    g_assert_cmpstr(nbd_opt_name(NBD_OPT_GO), ==, "NBD_OPT_GO");
    g_assert_cmpstr(nbd_opt_name(0), ==, "unknown");
    g_assert_cmpstr(nbd_opt_name(UINT32_MAX), ==, "unknown");
    g_assert_cmpstr(nbd_cmd_name(NBD_CMD_CACHE), ==, "NBD_CMD_CACHE");
    g_assert_cmpstr(nbd_cmd_name(0xffff), ==, "unknown");
}

static void test_meta_allocation_depth(void)
{
    static const char *const exact[] = { "qemu:allocation-depth" };
    static const char *const ns[] = { "qemu:" };
    static const char *const other[] = { "qemu:dirty-bitmap:",
                                         "base:allocation",
                                         "qemu:allocation-depthx" };
    NbdMetaRequest req;
    GError *err = NULL;
    GByteArray *a;

    a = meta_payload("exp", 1, exact, 1);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_true(nbd_meta_selects_allocation_depth(&req, true));
    g_assert_true(nbd_meta_selects_allocation_depth(&req, false));
    g_assert_false(nbd_meta_selects_base_allocation(&req, true));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);

    /* the namespace alone lists it, but does not set it */
    a = meta_payload("exp", 1, ns, 1);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_true(nbd_meta_selects_allocation_depth(&req, true));
    g_assert_false(nbd_meta_selects_allocation_depth(&req, false));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);

    a = meta_payload("exp", 3, other, 3);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_false(nbd_meta_selects_allocation_depth(&req, true));
    g_assert_false(nbd_meta_selects_allocation_depth(&req, false));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);

    a = meta_payload("exp", 0, NULL, 0);
    g_assert_true(nbd_parse_meta_request(a->data, a->len, &req, &err));
    g_assert_true(nbd_meta_selects_allocation_depth(&req, true));
    g_assert_false(nbd_meta_selects_allocation_depth(&req, false));
    nbd_meta_request_clear(&req);
    g_byte_array_unref(a);
}

static void test_check_extended(void)
{
    NbdRequestLimits ext = { .size = UINT64_C(1) << 40,
                             .structured_reply = true, .extended = true,
                             .allocation_depth = true };
    NbdRequestLimits compact = ext;
    uint32_t payload;
    bool fatal;

    compact.extended = false;
    /* 64-bit effect lengths where no payload is involved */
    g_assert_cmpint(check(0, NBD_CMD_WRITE_ZEROES, 0, UINT64_C(1) << 40,
                          &ext, &payload, &fatal), ==, 0);
    g_assert_cmpint(check(0, NBD_CMD_BLOCK_STATUS, 0, UINT64_C(1) << 39,
                          &ext, &payload, &fatal), ==, 0);
    g_assert_cmpuint(payload, ==, 0);
    /* PAYLOAD_LEN: a no-op on WRITE */
    g_assert_cmpint(check(NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 0, 512,
                          &ext, &payload, &fatal), ==, 0);
    g_assert_cmpuint(payload, ==, 512);
    /* ... refused elsewhere, its payload skipped, or fatal if too long */
    g_assert_cmpint(check(NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 0,
                          16, &ext, &payload, &fatal), ==, -EINVAL);
    g_assert_cmpuint(payload, ==, 16);
    g_assert_false(fatal);
    g_assert_cmpint(check(NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_FLUSH, 0,
                          UINT64_C(1) << 33, &ext, &payload, &fatal), ==,
                    -EINVAL);
    g_assert_true(fatal);
    /* ... and an unknown flag without extended headers */
    g_assert_cmpint(check(NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 0, 512,
                          &compact, &payload, &fatal), ==, -EINVAL);
    g_assert_cmpuint(payload, ==, 512);
    /* a 64-bit write payload over the limit ends the connection */
    g_assert_cmpint(check(0, NBD_CMD_WRITE, 0, UINT64_C(1) << 33, &ext,
                          &payload, &fatal), ==, -EINVAL);
    g_assert_true(fatal);
}

static void test_extended_header(void)
{
    uint8_t b[NBD_EXTENDED_REPLY_LEN];

    nbd_build_extended_header(b, NBD_REPLY_FLAG_DONE,
                              NBD_REPLY_TYPE_BLOCK_STATUS_EXT, 3,
                              UINT64_C(1) << 40, UINT64_C(1) << 33);
    g_assert_cmphex(nbd_get32(b), ==, 0x6e8a278c);
    g_assert_cmpuint(nbd_get16(b + 4), ==, 1);
    g_assert_cmpuint(nbd_get16(b + 6), ==, 6);
    g_assert_cmpuint(nbd_get64(b + 8), ==, 3);
    g_assert_cmpuint(nbd_get64(b + 16), ==, UINT64_C(1) << 40);
    g_assert_cmpuint(nbd_get64(b + 24), ==, UINT64_C(1) << 33);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd-proto/endian", test_endian);
    g_test_add_func("/nbd-proto/greeting", test_greeting);
    g_test_add_func("/nbd-proto/client-flags", test_client_flags);
    g_test_add_func("/nbd-proto/option-header", test_option_header);
    g_test_add_func("/nbd-proto/option-reply", test_option_reply);
    g_test_add_func("/nbd-proto/export-name", test_export_name);
    g_test_add_func("/nbd-proto/info-request", test_info_request);
    g_test_add_func("/nbd-proto/meta-request", test_meta_request);
    g_test_add_func("/nbd-proto/export-flags", test_export_flags);
    g_test_add_func("/nbd-proto/parse-request", test_parse_request);
    g_test_add_func("/nbd-proto/check-request", test_check_request);
    g_test_add_func("/nbd-proto/errno", test_errno_map);
    g_test_add_func("/nbd-proto/reply-headers", test_reply_headers);
    g_test_add_func("/nbd-proto/names", test_names);
    g_test_add_func("/nbd-proto/meta-allocation-depth",
                    test_meta_allocation_depth);
    g_test_add_func("/nbd-proto/check-extended", test_check_extended);
    g_test_add_func("/nbd-proto/extended-header", test_extended_header);
    return g_test_run();
}
