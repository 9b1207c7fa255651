/*
 * block-qcow2: the image header and its extensions.  Every check refuses
 * what qemu-storage-daemon 7.2 refuses, with its message.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

#define FAIL(...) do { \
        bd_error_setg(errp, __VA_ARGS__); \
        return false; \
    } while (0)

/* Feature-name table entries: type (1), bit (1), name (46). */
char *qcow2_feature_names(Qcow2State *s, int type, uint64_t bits)
{
    GString *out = g_string_new(NULL);
    const uint8_t *t = s->feature_table ? s->feature_table->data : NULL;
    size_t n = s->feature_table ? s->feature_table->len / 48 : 0;

    for (size_t i = 0; i < n && bits; i++) {
        const uint8_t *e = t + i * 48;

        if (e[0] == type && e[1] < 64 && (bits & (1ull << e[1]))) {
            if (out->len) {
                g_string_append(out, ", ");
            }
            g_string_append_len(out, (const char *)e + 2,
                                strnlen((const char *)e + 2, 46));
            bits &= ~(1ull << e[1]);
        }
    }
    if (bits) {
        if (out->len) {
            g_string_append(out, ", ");
        }
        g_string_append_printf(out, "Unknown incompatible feature: %"
                               G_GINT64_MODIFIER "x", bits);
    }
    return g_string_free(out, FALSE);
}

/* The extensions between the header and the backing file name. */
static bool parse_extensions(Qcow2State *s, const uint8_t *buf, size_t len,
                             size_t start, size_t end, GError **errp)
{
    size_t off = start;

    while (off + 8 <= end && off + 8 <= len) {
        uint32_t type = be32(buf + off), elen = be32(buf + off + 4);
        const uint8_t *data = buf + off + 8;

        off += 8;
        if (type == QCOW2_EXT_END) {
            break;
        }
        if (elen > end - off || elen > len - off) {
            FAIL("Header extension too large");
        }
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            /* QEMU keeps the format name in 16 bytes */
            if (elen >= 16) {
                FAIL("ERROR: ext_backing_format: len=%u too large "
                     "(>=%zu)", elen, (size_t)16);
            }
            g_free(s->backing_format);
            s->backing_format = g_strndup((const char *)data, elen);
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            if (!s->feature_table) {
                s->feature_table = g_byte_array_new();
            }
            g_byte_array_append(s->feature_table, data, elen);
            break;
        case QCOW2_EXT_CRYPTO:
            if (s->crypt_method != 2) {
                FAIL("CRYPTO header extension only expected with LUKS "
                     "encryption method");
            }
            /* encrypted images are refused once the header is read */
            break;
        case QCOW2_EXT_BITMAPS:
            if (elen != 24) {
                FAIL("bitmaps_ext: Invalid extension length");
            }
            s->nb_bitmaps = be32(data);
            s->bitmap_directory_size = be64(data + 8);
            s->bitmap_directory_offset = be64(data + 16);
            break;
        case QCOW2_EXT_DATA_FILE:
            g_free(s->image_data_file);
            s->image_data_file = g_strndup((const char *)data, elen);
            break;
        default:
            /* unknown: preserved when the header is rewritten */
            if (!s->unknown_exts) {
                s->unknown_exts = g_byte_array_new();
            }
            g_byte_array_append(s->unknown_exts, buf + off - 8,
                                8 + ((elen + 7) & ~7u));
            break;
        }
        off += (elen + 7) & ~7u;
    }
    return true;
}

bool qcow2_parse_header(Qcow2State *s, const uint8_t *buf, size_t len,
                        int64_t file_len, GError **errp)
{
    size_t ext_end;

    if (len < QCOW2_V2_HEADER_LEN || be32(buf) != QCOW_MAGIC) {
        FAIL("Image is not in qcow2 format");
    }
    s->version = be32(buf + 4);
    if (s->version < 2 || s->version > 3) {
        FAIL("Unsupported qcow2 version %u", s->version);
    }
    if (be32(buf + 20) < QCOW2_MIN_CLUSTER_BITS ||
        be32(buf + 20) > QCOW2_MAX_CLUSTER_BITS) {
        FAIL("Unsupported cluster size: 2^%u", be32(buf + 20));
    }
    s->cluster_bits = be32(buf + 20);
    s->cluster_size = 1 << s->cluster_bits;
    s->backing_file_offset = be64(buf + 8);
    s->backing_file_size = be32(buf + 16);
    s->size = (int64_t)be64(buf + 24);
    s->crypt_method = be32(buf + 32);
    s->l1_size = be32(buf + 36);
    s->l1_table_offset = (int64_t)be64(buf + 40);
    s->refcount_table_offset = (int64_t)be64(buf + 48);
    s->refcount_table_clusters = be32(buf + 56);
    s->nb_snapshots = be32(buf + 60);
    s->snapshots_offset = be64(buf + 64);
    if (s->version == 2) {
        s->incompat = s->compat = s->autoclear = 0;
        s->refcount_order = 4;
        s->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        if (len < QCOW2_V3_MIN_HEADER_LEN) {
            FAIL("qcow2 header too short");
        }
        s->incompat = be64(buf + 72);
        s->compat = be64(buf + 80);
        s->autoclear = be64(buf + 88);
        s->refcount_order = be32(buf + 96);
        s->header_length = be32(buf + 100);
        if (s->header_length < QCOW2_V3_MIN_HEADER_LEN) {
            FAIL("qcow2 header too short");
        }
        if (s->header_length > 112 && s->header_length <= len) {
            /* fields this version does not know: kept on rewrites */
            s->unknown_header_fields = g_byte_array_new();
            g_byte_array_append(s->unknown_header_fields, buf + 112,
                                s->header_length - 112);
        }
    }
    if (s->header_length > s->cluster_size) {
        FAIL("qcow2 header exceeds cluster size");
    }
    if (s->backing_file_offset > (uint64_t)s->cluster_size) {
        FAIL("Invalid backing file offset");
    }

    /* the feature table names unknown features in the message below */
    ext_end = s->backing_file_offset ? s->backing_file_offset
                                     : (uint64_t)s->cluster_size;
    /* version 2 images have extensions too, after the 72-byte header */
    if (!parse_extensions(s, buf, len, s->header_length, ext_end, errp)) {
        return false;
    }
    if (s->incompat & ~QCOW2_INCOMPAT_MASK) {
        g_autofree char *names =
            qcow2_feature_names(s, 0, s->incompat & ~QCOW2_INCOMPAT_MASK);

        FAIL("Unsupported qcow2 feature(s): %s", names);
    }
    /* read from a 32-bit field: a value with the top bit set is negative */
    if (s->refcount_order < 0 || s->refcount_order > 6) {
        FAIL("Reference count entry width too large; may not exceed 64 "
             "bits");
    }
    s->refcount_bits = 1 << s->refcount_order;
    s->refcount_max = s->refcount_order == 6 ? UINT64_MAX
                      : (1ull << s->refcount_bits) - 1;
    s->refcount_block_bits = s->cluster_bits - (s->refcount_order - 3);

    /* the compression type field follows the 104 mandatory bytes */
    s->compression_type = QCOW2_COMPRESSION_ZLIB;
    if (s->header_length > 104) {
        s->compression_type = buf[104];
    }
    if (s->compression_type > QCOW2_COMPRESSION_ZSTD) {
        FAIL("qcow2: unknown compression type: %u", s->compression_type);
    }
    if (s->compression_type == QCOW2_COMPRESSION_ZLIB &&
        (s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
        FAIL("qcow2: Compression type incompatible feature bit must not "
             "be set");
    }
    if (s->compression_type != QCOW2_COMPRESSION_ZLIB &&
        !(s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
        FAIL("qcow2: Compression type incompatible feature bit must be "
             "set");
    }

    s->extended_l2 = s->incompat & QCOW2_INCOMPAT_EXTL2;
    if (s->extended_l2 && s->cluster_bits < 14) {
        /* 32 subclusters of at least 512 bytes */
        FAIL("Unsupported subcluster size: %d", (1 << s->cluster_bits) / 32);
    }
    s->l2_entry_size = s->extended_l2 ? 16 : 8;
    s->l2_bits = s->cluster_bits - (s->extended_l2 ? 4 : 3);
    s->l2_size = 1 << s->l2_bits;
    s->subcluster_bits = s->cluster_bits - (s->extended_l2 ? 5 : 0);
    s->subcluster_size = 1 << s->subcluster_bits;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (1ull << s->csize_shift) - 1;

    if (s->crypt_method > 2) {
        FAIL("Unsupported encryption method %u", s->crypt_method);
    }
    if (s->crypt_method) {
        /* QEMU's first complaint without options is the missing key */
        if (!s->have_encrypt_opts) {
            FAIL("Parameter 'encrypt.key-secret' is required for cipher");
        }
        FAIL("qcow2: encrypted images (%s) are not supported yet: "
             "encryption comes with the luks work",
             s->crypt_method == 1 ? "aes" : "luks");
    }
    s->data_file_raw = s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW;

    if (s->backing_file_offset) {
        if (s->backing_file_size > 1023 ||
            s->backing_file_offset + s->backing_file_size >
            (uint64_t)s->cluster_size) {
            FAIL("Backing file name too long");
        }
        if (s->backing_file_offset + s->backing_file_size > len) {
            FAIL("Could not read backing file name");
        }
        s->backing_file = g_strndup((const char *)buf +
                                    s->backing_file_offset,
                                    s->backing_file_size);
    }
    (void)file_len;
    return true;
}

/* QEMU's qcow2_validate_table(). */
static bool validate_table(Qcow2State *s, uint64_t offset, uint64_t entries,
                           size_t entry_len, int64_t max_size_bytes,
                           const char *name, int64_t file_len,
                           GError **errp)
{
    uint64_t size;

    if (entries > (uint64_t)max_size_bytes / entry_len) {
        FAIL("%s too large", name);
    }
    size = entries * entry_len;
    if ((uint64_t)INT64_MAX - size < offset) {
        FAIL("%s offset invalid", name);
    }
    /* tables are cluster aligned */
    if (offset_into_cluster(s, offset) != 0) {
        FAIL("%s offset invalid", name);
    }
    (void)file_len;
    return true;
}

bool qcow2_check_tables(Qcow2State *s, int64_t file_len, GError **errp)
{
    uint64_t max_rt_clusters = QCOW_MAX_REFTABLE_SIZE >> s->cluster_bits;
    uint64_t l1_vm_state_index;
    int shift;

    if (s->refcount_table_clusters > max_rt_clusters) {
        FAIL("Reference count table too large");
    }
    if (s->refcount_table_clusters == 0) {
        FAIL("Image does not contain a reference count table");
    }
    if (!validate_table(s, s->refcount_table_offset,
                        s->refcount_table_clusters, s->cluster_size,
                        QCOW_MAX_REFTABLE_SIZE, "Reference count table",
                        file_len, errp)) {
        return false;
    }
    if (!validate_table(s, s->snapshots_offset, s->nb_snapshots, 40,
                        QCOW_MAX_SNAPSHOTS * 40, "Snapshot table",
                        file_len, errp)) {
        return false;
    }
    if (s->l1_size > QCOW_MAX_L1_SIZE / 8) {
        FAIL("Active L1 table too large");
    }
    shift = s->cluster_bits + s->l2_bits;
    l1_vm_state_index = s->size < 0 ? UINT64_MAX :
        ((uint64_t)s->size + (1ull << shift) - 1) >> shift;
    if (l1_vm_state_index > G_MAXINT) {
        FAIL("Image is too big");
    }
    if (s->l1_size < l1_vm_state_index) {
        FAIL("L1 table is too small");
    }
    if (!validate_table(s, s->l1_table_offset, s->l1_size, 8,
                        QCOW_MAX_L1_SIZE, "Active L1 table", file_len,
                        errp)) {
        return false;
    }
    return true;
}

int qcow2_write_incompat(Qcow2State *s, uint64_t incompat)
{
    uint64_t be = GUINT64_TO_BE(incompat);
    int ret;

    if (s->version < 3) {
        return -ENOTSUP;
    }
    ret = bd_child_co_pwrite(s->file, HDR_INCOMPAT, 8, &be, 0);
    if (ret == 0) {
        s->incompat = incompat;
    }
    return ret;
}

int qcow2_write_autoclear(Qcow2State *s, uint64_t autoclear)
{
    uint64_t be = GUINT64_TO_BE(autoclear);
    int ret;

    if (s->version < 3) {
        return -ENOTSUP;
    }
    ret = bd_child_co_pwrite(s->file, 88, 8, &be, 0);
    if (ret == 0) {
        s->autoclear = autoclear;
    }
    return ret;
}

/* An extension of @len bytes of @data, padded to 8 (QEMU's layout). */
static bool put_ext(uint8_t *buf, size_t buflen, size_t *pos, uint32_t type,
                    const void *data, size_t len)
{
    size_t ext_len = 8 + ((len + 7) & ~(size_t)7);
    uint32_t be_type = GUINT32_TO_BE(type), be_len = GUINT32_TO_BE(len);

    if (buflen - *pos < ext_len) {
        return false;
    }
    memcpy(buf + *pos, &be_type, 4);
    memcpy(buf + *pos + 4, &be_len, 4);
    if (len) {
        memcpy(buf + *pos + 8, data, len);
    }
    *pos += ext_len;
    return true;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

/*
 * QEMU's feature-name table: it writes this one whatever the image had,
 * so an image it rewrites names every feature it knows.
 */
static const struct {
    uint8_t type, bit;
    const char *name;
} feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

int qcow2_update_header(Qcow2State *s)
{
    size_t buflen = s->cluster_size, pos;
    g_autofree uint8_t *buf = g_malloc0(buflen);
    size_t unknown_len = s->unknown_header_fields ?
                         s->unknown_header_fields->len : 0;

    put_be32(buf, QCOW_MAGIC);
    put_be32(buf + 4, s->version);
    put_be32(buf + 20, s->cluster_bits);
    put_be64(buf + 24, s->size);
    put_be32(buf + 32, s->crypt_method);
    put_be32(buf + 36, s->l1_size);
    put_be64(buf + 40, s->l1_table_offset);
    put_be64(buf + HDR_REFTABLE_OFFSET, s->refcount_table_offset);
    put_be32(buf + 56, s->refcount_table_clusters);
    put_be32(buf + 60, s->nb_snapshots);
    put_be64(buf + 64, s->snapshots_offset);
    if (s->version >= 3) {
        put_be64(buf + HDR_INCOMPAT, s->incompat);
        put_be64(buf + 80, s->compat);
        put_be64(buf + 88, s->autoclear);
        put_be32(buf + 96, s->refcount_order);
        /* the 112-byte header of QEMU, compression type at 104 */
        put_be32(buf + 100, 112 + unknown_len);
        buf[104] = s->compression_type;
        pos = 112;
        if (unknown_len > buflen - pos) {
            return -ENOSPC;
        }
        if (unknown_len) {
            memcpy(buf + pos, s->unknown_header_fields->data, unknown_len);
        }
        pos += unknown_len;
    } else {
        pos = QCOW2_V2_HEADER_LEN;
    }

    if (s->backing_format &&
        !put_ext(buf, buflen, &pos, QCOW2_EXT_BACKING_FORMAT,
                 s->backing_format, strlen(s->backing_format))) {
        return -ENOSPC;
    }
    if (has_data_file(s) && s->image_data_file &&
        !put_ext(buf, buflen, &pos, QCOW2_EXT_DATA_FILE, s->image_data_file,
                 strlen(s->image_data_file))) {
        return -ENOSPC;
    }
    /*
     * 8 names take 392 bytes: QEMU leaves the table out of images with
     * clusters of 4 KiB and less, so that a backing file name still fits
     */
    if (s->version >= 3 && s->cluster_size > 4096) {
        uint8_t table[G_N_ELEMENTS(feature_names) * 48] = { 0 };

        for (size_t i = 0; i < G_N_ELEMENTS(feature_names); i++) {
            table[i * 48] = feature_names[i].type;
            table[i * 48 + 1] = feature_names[i].bit;
            memcpy(table + i * 48 + 2, feature_names[i].name,
                   strlen(feature_names[i].name));
        }
        if (!put_ext(buf, buflen, &pos, QCOW2_EXT_FEATURE_TABLE, table,
                     sizeof(table))) {
            return -ENOSPC;
        }
    }
    if (s->nb_bitmaps > 0) {
        uint8_t ext[24] = { 0 };

        put_be32(ext, s->nb_bitmaps);
        put_be64(ext + 8, s->bitmap_directory_size);
        put_be64(ext + 16, s->bitmap_directory_offset);
        if (!put_ext(buf, buflen, &pos, QCOW2_EXT_BITMAPS, ext,
                     sizeof(ext))) {
            return -ENOSPC;
        }
    }
    if (s->unknown_exts) {
        /* kept with their own headers and padding */
        if (s->unknown_exts->len > buflen - pos) {
            return -ENOSPC;
        }
        memcpy(buf + pos, s->unknown_exts->data, s->unknown_exts->len);
        pos += s->unknown_exts->len;
    }
    if (!put_ext(buf, buflen, &pos, QCOW2_EXT_END, NULL, 0)) {
        return -ENOSPC;
    }
    if (s->backing_file) {
        size_t len = strlen(s->backing_file);

        if (len > buflen - pos) {
            return -ENOSPC;
        }
        memcpy(buf + pos, s->backing_file, len);
        put_be64(buf + 8, pos);
        put_be32(buf + 16, len);
    }
    return bd_child_co_pwrite(s->file, 0, buflen, buf, 0);
}
