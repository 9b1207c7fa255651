/*
 * The backing file name and format an image records (what block-stream,
 * block-commit and change-backing-file change): the header cluster is
 * rewritten with the same fixed header, the extensions it had but the
 * backing format one, the new backing format extension, and the name,
 * as QEMU's qcow2_update_header() lays them out.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

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

static uint32_t get_be32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}

static void add_ext(GByteArray *out, uint32_t type, const void *data,
                    uint32_t len)
{
    static const uint8_t zero[8];
    uint8_t hdr[8];

    put_be32(hdr, type);
    put_be32(hdr + 4, len);
    g_byte_array_append(out, hdr, 8);
    g_byte_array_append(out, data, len);
    g_byte_array_append(out, zero, ((len + 7) & ~7u) - len);
}

int qcow2_co_change_backing_file(BdNode *node, const char *file,
                                 const char *fmt)
{
    Qcow2State *s = bd_node_get_opaque(node);
    size_t cs = s->cluster_size;
    g_autofree uint8_t *buf = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    size_t off, ext_end, name_off;
    int ret;

    /* QEMU's limits: a 1023-byte name; no backing for a raw data file */
    if (file && strlen(file) > 1023) {
        return -EINVAL;
    }
    if (file && s->data_file_raw) {
        return -EINVAL;
    }
    if (s->read_only) {
        return -EACCES;
    }
    buf = g_malloc0(cs);
    ret = bd_child_co_pread(s->file, 0, cs, buf, 0);
    if (ret < 0) {
        return ret;
    }
    if (file && fmt) {
        add_ext(out, QCOW2_EXT_BACKING_FORMAT, fmt, strlen(fmt));
    }
    /* every other extension as it is (validated when the image opened) */
    ext_end = s->backing_file_offset ? s->backing_file_offset : cs;
    off = s->header_length;
    while (off + 8 <= ext_end) {
        uint32_t type = get_be32(buf + off);
        uint32_t len = get_be32(buf + off + 4);
        size_t whole = 8 + ((len + 7) & ~(size_t)7);

        if (type == QCOW2_EXT_END || off + whole > ext_end) {
            break;
        }
        if (type != QCOW2_EXT_BACKING_FORMAT) {
            g_byte_array_append(out, buf + off, whole);
        }
        off += whole;
    }
    add_ext(out, QCOW2_EXT_END, NULL, 0);
    name_off = s->header_length + out->len;
    if (file) {
        g_byte_array_append(out, (const uint8_t *)file, strlen(file));
    }
    if (s->header_length + out->len > cs) {
        return -ENOSPC;
    }
    memset(buf + s->header_length, 0, cs - s->header_length);
    memcpy(buf + s->header_length, out->data, out->len);
    put_be64(buf + 8, file ? name_off : 0);
    put_be32(buf + 16, file ? strlen(file) : 0);
    ret = bd_child_co_pwrite(s->file, 0, cs, buf, 0);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        return ret;
    }
    s->backing_file_offset = file ? name_off : 0;
    s->backing_file_size = file ? strlen(file) : 0;
    g_free(s->backing_file);
    g_free(s->full_backing_file);
    g_free(s->backing_format);
    s->backing_file = g_strdup(file);
    s->full_backing_file = file ? qcow2_relative_path(node, s->file, file)
                                : NULL;
    s->backing_format = file ? g_strdup(fmt) : NULL;
    return 0;
}
