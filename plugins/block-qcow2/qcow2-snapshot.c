/*
 * block-qcow2: the internal snapshots of the image as query-named-block-
 * nodes and query-block show them (ImageInfo's snapshots), read from the
 * snapshot table (qcow2.txt "Snapshots") as QEMU 7.2 reads it: the
 * 64-bit VM state size and the icount from the extra data when it holds
 * them.  Creating and deleting snapshots is not there yet.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

typedef struct Qcow2SnapshotInfo {
    char *id;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;            /* UINT64_MAX: none recorded */
} Qcow2SnapshotInfo;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void info_free(gpointer p)
{
    Qcow2SnapshotInfo *sn = p;

    g_free(sn->id);
    g_free(sn->name);
    g_free(sn);
}

int qcow2_read_snapshot_info(Qcow2State *s)
{
    int64_t off = s->snapshots_offset;

    qcow2_free_snapshot_info(s);
    s->snapshot_info = g_ptr_array_new_with_free_func(info_free);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        uint8_t h[40], extra[24] = { 0 };
        uint32_t id_len, name_len, extra_len;
        g_autofree char *strs = NULL;
        Qcow2SnapshotInfo *sn;
        int ret = qcow2_child_pread(s->file, off, sizeof(h), h);

        if (ret < 0) {
            return ret;
        }
        id_len = (uint32_t)h[12] << 8 | h[13];
        name_len = (uint32_t)h[14] << 8 | h[15];
        extra_len = be32(h + 36);
        if (extra_len > 1024) {
            /* QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA */
            return -EFBIG;
        }
        if (extra_len) {
            ret = qcow2_child_pread(s->file, off + 40,
                                    MIN(extra_len, sizeof(extra)), extra);
            if (ret < 0) {
                return ret;
            }
        }
        strs = g_malloc(id_len + name_len + 1);
        ret = qcow2_child_pread(s->file, off + 40 + extra_len,
                                id_len + name_len, strs);
        if (ret < 0) {
            return ret;
        }
        sn = g_new0(Qcow2SnapshotInfo, 1);
        sn->id = g_strndup(strs, id_len);
        sn->name = g_strndup(strs + id_len, name_len);
        sn->date_sec = be32(h + 16);
        sn->date_nsec = be32(h + 20);
        sn->vm_clock_nsec = be64(h + 24);
        sn->vm_state_size = extra_len >= 8 ? be64(extra) : be32(h + 32);
        sn->icount = extra_len >= 24 ? be64(extra + 16) : UINT64_MAX;
        g_ptr_array_add(s->snapshot_info, sn);
        off += 40 + extra_len + id_len + name_len;
        off = (off + 7) & ~7ll;
    }
    return 0;
}

void qcow2_free_snapshot_info(Qcow2State *s)
{
    if (s->snapshot_info) {
        g_ptr_array_unref(s->snapshot_info);
        s->snapshot_info = NULL;
    }
}

void qcow2_snapshot_image_info(Qcow2State *s, JsonObject *info)
{
    JsonArray *a;

    if (!s->snapshot_info || !s->snapshot_info->len) {
        /* QEMU leaves the member out when there are none */
        return;
    }
    a = json_array_new();
    for (guint i = 0; i < s->snapshot_info->len; i++) {
        Qcow2SnapshotInfo *sn = s->snapshot_info->pdata[i];
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "id", sn->id);
        json_object_set_string_member(o, "name", sn->name);
        json_object_set_int_member(o, "vm-state-size",
                                   (int64_t)sn->vm_state_size);
        json_object_set_int_member(o, "date-sec", sn->date_sec);
        json_object_set_int_member(o, "date-nsec", sn->date_nsec);
        json_object_set_int_member(o, "vm-clock-sec",
                                   (int64_t)(sn->vm_clock_nsec /
                                             1000000000ull));
        json_object_set_int_member(o, "vm-clock-nsec",
                                   (int64_t)(sn->vm_clock_nsec %
                                             1000000000ull));
        if (sn->icount != UINT64_MAX) {
            json_object_set_int_member(o, "icount", (int64_t)sn->icount);
        }
        json_array_add_object_element(a, o);
    }
    json_object_set_array_member(info, "snapshots", a);
}
