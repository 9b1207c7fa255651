/*
 * block-qcow2: what query-named-block-nodes shows of a qcow2 image
 * (ImageInfo's cluster size, backing file names and format-specific
 * part), as QEMU 7.2 fills them, and the persistent bitmaps listed there.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

typedef struct Qcow2BitmapEntry {
    char *name;
    int64_t granularity;
    uint32_t flags;
} Qcow2BitmapEntry;

#define BME_FLAG_IN_USE (1u << 0)
#define BME_FLAG_AUTO (1u << 1)

static void bitmap_entry_free(gpointer p)
{
    Qcow2BitmapEntry *e = p;

    g_free(e->name);
    g_free(e);
}

int qcow2_read_bitmap_list(Qcow2State *s)
{
    g_autofree uint8_t *dir = NULL;
    uint64_t pos = 0;
    int ret;

    s->bitmaps = g_ptr_array_new_with_free_func(bitmap_entry_free);
    /* an empty or huge directory: the open refuses it (qcow2-bitmap.c) */
    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) ||
        !s->bitmap_directory_size || s->bitmap_directory_size > (64u << 20)) {
        return 0;
    }
    dir = g_malloc(s->bitmap_directory_size);
    ret = qcow2_child_pread(s->file, s->bitmap_directory_offset,
                            s->bitmap_directory_size, dir);
    if (ret < 0) {
        return ret;
    }
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        const uint8_t *e = dir + pos;
        uint32_t name_len, extra;
        Qcow2BitmapEntry *b;

        /* a broken directory: the open refuses it (qcow2-bitmap.c) */
        if (pos + 24 > s->bitmap_directory_size) {
            return 0;
        }
        name_len = e[18] << 8 | e[19];
        extra = (uint32_t)e[20] << 24 | e[21] << 16 | e[22] << 8 | e[23];
        if (pos + 24 + extra + name_len > s->bitmap_directory_size ||
            e[17] > 63) {
            return 0;
        }
        b = g_new0(Qcow2BitmapEntry, 1);
        b->name = g_strndup((const char *)e + 24 + extra, name_len);
        b->granularity = 1ll << e[17];
        b->flags = (uint32_t)e[12] << 24 | (uint32_t)e[13] << 16 |
                   (uint32_t)e[14] << 8 | e[15];
        g_ptr_array_add(s->bitmaps, b);
        pos += (24 + extra + name_len + 7) & ~7ull;
    }
    return 0;
}

int qcow2_read_snapshot_list(Qcow2State *s)
{
    int64_t off = s->snapshots_offset;

    s->snapshot_l1 = g_array_new(FALSE, TRUE, sizeof(Qcow2SnapshotL1));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2SnapshotL1 sn = { 0 };
        uint8_t h[40];
        uint32_t id_len, name_len, extra;
        int ret = qcow2_child_pread(s->file, off, sizeof(h), h);

        if (ret < 0) {
            return ret;
        }
        sn.offset = (uint64_t)GUINT32_FROM_BE(*(uint32_t *)h) << 32 |
                    GUINT32_FROM_BE(*(uint32_t *)(h + 4));
        sn.size = GUINT32_FROM_BE(*(uint32_t *)(h + 8));
        id_len = h[12] << 8 | h[13];
        name_len = h[14] << 8 | h[15];
        extra = GUINT32_FROM_BE(*(uint32_t *)(h + 36));
        if (sn.size > QCOW_MAX_L1_SIZE / 8) {
            return -EFBIG;
        }
        /* the L2 tables of the snapshot, for the inactive-l2 check */
        if (sn.size && (s->overlap_check & QCOW2_OL_INACTIVE_L2)) {
            sn.l2 = g_new(uint64_t, sn.size);
            ret = qcow2_child_pread(s->file, sn.offset, sn.size * 8ll,
                                    sn.l2);
            if (ret < 0) {
                g_free(sn.l2);
                return ret;
            }
            for (uint32_t j = 0; j < sn.size; j++) {
                sn.l2[j] = GUINT64_FROM_BE(sn.l2[j]) & L1E_OFFSET_MASK;
            }
        }
        g_array_append_val(s->snapshot_l1, sn);
        off += 40 + extra + id_len + name_len;
        off = (off + 7) & ~7ll;
    }
    return 0;
}

void qcow2_free_snapshot_list(Qcow2State *s)
{
    if (s->snapshot_l1) {
        for (guint i = 0; i < s->snapshot_l1->len; i++) {
            g_free(g_array_index(s->snapshot_l1, Qcow2SnapshotL1, i).l2);
        }
        g_array_unref(s->snapshot_l1);
        s->snapshot_l1 = NULL;
    }
}

void qcow2_free_bitmap_list(Qcow2State *s)
{
    if (s->bitmaps) {
        g_ptr_array_unref(s->bitmaps);
        s->bitmaps = NULL;
    }
}

static JsonObject *format_specific(Qcow2State *s)
{
    JsonObject *w = json_object_new();
    JsonObject *d = json_object_new();

    json_object_set_string_member(w, "type", "qcow2");
    if (s->version == 2) {
        json_object_set_string_member(d, "compat", "0.10");
    } else {
        json_object_set_string_member(d, "compat", "1.1");
        json_object_set_boolean_member(d, "lazy-refcounts",
                                       s->compat &
                                       QCOW2_COMPAT_LAZY_REFCOUNTS);
        json_object_set_boolean_member(d, "corrupt",
                                       s->incompat & QCOW2_INCOMPAT_CORRUPT);
        json_object_set_boolean_member(d, "extended-l2", s->extended_l2);
        if (s->image_data_file) {
            json_object_set_string_member(d, "data-file",
                                          s->image_data_file);
        }
        if (has_data_file(s)) {
            json_object_set_boolean_member(d, "data-file-raw",
                                           s->data_file_raw);
        }
    }
    json_object_set_int_member(d, "refcount-bits", s->refcount_bits);
    if (s->bitmaps && s->bitmaps->len) {
        JsonArray *a = json_array_new();

        for (guint i = 0; i < s->bitmaps->len; i++) {
            Qcow2BitmapEntry *b = s->bitmaps->pdata[i];
            JsonObject *o = json_object_new();
            JsonArray *flags = json_array_new();

            json_object_set_string_member(o, "name", b->name);
            json_object_set_int_member(o, "granularity", b->granularity);
            if (b->flags & BME_FLAG_IN_USE) {
                json_array_add_string_element(flags, "in-use");
            }
            if (b->flags & BME_FLAG_AUTO) {
                json_array_add_string_element(flags, "auto");
            }
            json_object_set_array_member(o, "flags", flags);
            json_array_add_object_element(a, o);
        }
        json_object_set_array_member(d, "bitmaps", a);
    }
    json_object_set_string_member(d, "compression-type",
                                  s->compression_type ? "zstd" : "zlib");
    json_object_set_object_member(w, "data", d);
    return w;
}

void qcow2_query_image_info(BdNode *node, JsonObject *info)
{
    Qcow2State *s = bd_node_get_opaque(node);

    json_object_set_int_member(info, "cluster-size", s->cluster_size);
    if (s->backing_file) {
        json_object_set_string_member(info, "backing-filename",
                                      s->backing_file);
        if (s->full_backing_file) {
            json_object_set_string_member(info, "full-backing-filename",
                                          s->full_backing_file);
        }
        if (s->backing_format) {
            json_object_set_string_member(info, "backing-filename-format",
                                          s->backing_format);
        }
    }
    qcow2_snapshot_image_info(s, info);
    json_object_set_object_member(info, "format-specific",
                                  format_specific(s));
}
