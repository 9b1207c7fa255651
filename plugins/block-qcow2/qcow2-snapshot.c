/*
 * block-qcow2: the internal snapshots of the image as query-named-block-
 * nodes and query-block show them (ImageInfo's snapshots), read from the
 * snapshot table (qcow2.txt "Snapshots") as QEMU 7.2 reads it: the
 * 64-bit VM state size and the icount from the extra data when it holds
 * them; and blockdev-snapshot-internal-sync /
 * blockdev-snapshot-delete-internal-sync as QEMU 7.2's qcow2 does them.
 *
 * Create: a copy of the active L1 table, then every cluster the active
 * tables reach gets one more reference (and loses its COPIED flag, so
 * the next write copies it), then a new snapshot table, then the header
 * names it; the old table is freed last.  Delete: the table without the
 * snapshot first, then the snapshot's references are dropped and its L1
 * table freed, then the COPIED flags of the active tables are set again
 * where a cluster is the active image's alone.  A kill at any point
 * leaves at worst leaked clusters, as in QEMU.  The core drains the node
 * around both.
 */
#include <errno.h>
#include <string.h>

#include "qcow2.h"

typedef struct Qcow2SnapshotInfo {
    uint8_t *raw;               /* the entry as stored, unpadded */
    size_t raw_len;
    uint64_t l1_offset;
    uint32_t l1_size;
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

    g_free(sn->raw);
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
        sn->raw_len = 40 + extra_len + id_len + name_len;
        sn->raw = g_malloc(sn->raw_len);
        ret = qcow2_child_pread(s->file, off, sn->raw_len, sn->raw);
        if (ret < 0) {
            info_free(sn);
            return ret;
        }
        sn->l1_offset = be64(h);
        sn->l1_size = be32(h + 8);
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

static JsonArray *info_list(Qcow2State *s)
{
    JsonArray *a = json_array_new();

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
    return a;
}

void qcow2_snapshot_image_info(Qcow2State *s, JsonObject *info)
{
    if (!s->snapshot_info || !s->snapshot_info->len) {
        /* QEMU leaves the member out when there are none */
        return;
    }
    json_object_set_array_member(info, "snapshots", info_list(s));
}

int qcow2_snapshot_list(BdNode *node, JsonArray **list)
{
    Qcow2State *s = bd_node_get_opaque(node);

    *list = info_list(s);
    return 0;
}

/* --- changing the snapshots --- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, v >> 32);
    put_be32(p + 4, (uint32_t)v);
}

static size_t padded(size_t len)
{
    return (len + 7) & ~(size_t)7;
}

/*
 * coroutine_fn, meta_lock held: QEMU's qcow2_update_snapshot_refcount().
 * Every cluster the L1 table @l1 reaches (its L2 tables, their data and
 * compressed clusters) gets @addend references (+1, -1 or 0); with
 * @active (@l1 is the image's own table) the COPIED flags of its entries
 * and of its L2 tables' entries follow the new refcounts, and the L1
 * table is written back if they changed.
 */
static int update_refcounts(Qcow2State *s, uint64_t *l1, uint32_t l1_size,
                            int addend, bool active)
{
    int64_t slice_bytes = s->l2_slice_size * s->l2_entry_size;
    bool l1_changed = false;
    int ret = 0;

    for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
        uint64_t l1e = active ? __atomic_load_n(&l1[i], __ATOMIC_RELAXED)
                              : l1[i];
        uint64_t l2_off = l1e & L1E_OFFSET_MASK;
        uint64_t rc;

        if (!l2_off) {
            continue;
        }
        for (int64_t sl = 0; sl < s->cluster_size && ret == 0;
             sl += slice_bytes) {
            uint64_t *slice;

            ret = qcow2_cache_get(s->l2_cache, l2_off + sl, false,
                                  (void **)&slice);
            if (ret < 0) {
                break;
            }
            for (int j = 0; j < s->l2_slice_size && ret == 0; j++) {
                uint64_t e = qcow2_l2_get(s, slice, j), ne;
                uint64_t host = e & L2E_OFFSET_MASK;

                if (e & QCOW_OFLAG_COMPRESSED) {
                    uint64_t coff = e & s->cluster_offset_mask;
                    uint64_t nb = ((e >> s->csize_shift) & s->csize_mask) + 1;
                    int64_t csize = nb * 512 - (coff & 511);

                    if (addend > 0) {
                        ret = qcow2_update_refcount(s, coff, csize, 1);
                    } else if (addend < 0) {
                        ret = qcow2_free_clusters(
                            s, coff, csize, s->discard_passthrough_snapshot);
                    }
                    continue;
                }
                if (!host) {
                    continue;
                }
                if (addend > 0) {
                    ret = qcow2_update_refcount(s, host, s->cluster_size, 1);
                } else if (addend < 0) {
                    ret = qcow2_free_clusters(
                        s, host, s->cluster_size,
                        s->discard_passthrough_snapshot);
                }
                if (ret < 0 || !active) {
                    continue;
                }
                ret = qcow2_get_refcount(s, host >> s->cluster_bits, &rc);
                ne = rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
                if (ret == 0 && ne != e) {
                    qcow2_l2_set(s, slice, j, ne,
                                 qcow2_l2_get_bitmap(s, slice, j));
                    qcow2_cache_mark_dirty(s->l2_cache, slice);
                }
            }
            qcow2_cache_put(s->l2_cache, slice);
        }
        if (ret < 0) {
            break;
        }
        if (addend > 0) {
            ret = qcow2_update_refcount(s, l2_off, s->cluster_size, 1);
        } else if (addend < 0) {
            ret = qcow2_free_clusters(s, l2_off, s->cluster_size,
                                      s->discard_passthrough_snapshot);
        }
        if (ret == 0 && active) {
            uint64_t nl1e;

            ret = qcow2_get_refcount(s, l2_off >> s->cluster_bits, &rc);
            nl1e = rc == 1 ? l1e | QCOW_OFLAG_COPIED
                           : l1e & ~QCOW_OFLAG_COPIED;
            if (ret == 0 && nl1e != l1e) {
                __atomic_store_n(&l1[i], nl1e, __ATOMIC_RELEASE);
                l1_changed = true;
            }
        }
    }
    if (ret == 0 && l1_changed) {
        g_autofree uint64_t *be = g_new(uint64_t, l1_size);

        for (uint32_t i = 0; i < l1_size; i++) {
            be[i] = GUINT64_TO_BE(__atomic_load_n(&l1[i], __ATOMIC_RELAXED));
        }
        ret = bd_child_co_pwrite(s->file, s->l1_table_offset,
                                 (int64_t)l1_size * 8, be, 0);
    }
    return ret;
}

/*
 * coroutine_fn, meta_lock held: write @entries (raw, unpadded) as the new
 * snapshot table in new clusters, then the header fields that name it;
 * the old table is freed after.  Lists read again.
 */
static int write_table(Qcow2State *s, GPtrArray *entries, GArray *lens)
{
    uint64_t old_off = s->snapshots_offset, old_size = 0, size = 0;
    uint32_t old_nb = s->nb_snapshots;
    g_autofree uint8_t *buf = NULL;
    uint8_t hdr[12];
    int64_t off = 0;
    int ret;

    for (guint i = 0; s->snapshot_info && i < s->snapshot_info->len; i++) {
        old_size += padded(((Qcow2SnapshotInfo *)
                            s->snapshot_info->pdata[i])->raw_len);
    }
    for (guint i = 0; i < entries->len; i++) {
        size += padded(g_array_index(lens, size_t, i));
    }
    if (size) {
        size_t pos = 0;

        buf = g_malloc0(size);
        for (guint i = 0; i < entries->len; i++) {
            size_t len = g_array_index(lens, size_t, i);

            memcpy(buf + pos, entries->pdata[i], len);
            pos += padded(len);
        }
        off = qcow2_alloc_clusters(s, size_to_clusters(s, size));
        if (off < 0) {
            return (int)off;
        }
        ret = qcow2_pre_write_overlap_check(s, 0, off, size);
        if (ret == 0) {
            ret = bd_child_co_pwrite(s->file, off, size, buf, 0);
        }
        if (ret < 0) {
            qcow2_free_clusters(s, off, size, false);
            return ret;
        }
    }
    /* what the new table needs is on disk before the header names it */
    ret = qcow2_write_caches(s);
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret == 0) {
        put_be32(hdr, entries->len);
        put_be64(hdr + 4, off);
        ret = bd_child_co_pwrite(s->file, 60, sizeof(hdr), hdr, 0);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        if (size) {
            qcow2_free_clusters(s, off, size, false);
        }
        return ret;
    }
    s->nb_snapshots = entries->len;
    s->snapshots_offset = off;
    if (old_nb && old_size) {
        qcow2_free_clusters(s, old_off, old_size,
                            s->discard_passthrough_snapshot);
    }
    qcow2_free_snapshot_list(s);
    ret = qcow2_read_snapshot_list(s);
    if (ret == 0) {
        ret = qcow2_read_snapshot_info(s);
    }
    return ret;
}

/* The current entries, for write_table(). */
static void current_entries(Qcow2State *s, GPtrArray *entries, GArray *lens)
{
    for (guint i = 0; s->snapshot_info && i < s->snapshot_info->len; i++) {
        Qcow2SnapshotInfo *sn = s->snapshot_info->pdata[i];

        g_ptr_array_add(entries, g_memdup2(sn->raw, sn->raw_len));
        g_array_append_val(lens, sn->raw_len);
    }
}

typedef struct SnapCo {
    Qcow2State *s;
    const char *id;
    const char *name;
    int64_t date_sec, date_nsec, vm_clock_nsec;
    GError **errp;
    int ret;
} SnapCo;

static void create_co(void *opaque)
{
    SnapCo *c = opaque;
    Qcow2State *s = c->s;
    g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) lens = g_array_new(FALSE, FALSE, sizeof(size_t));
    g_autofree char *id = NULL;
    g_autofree uint64_t *l1 = NULL;
    uint64_t max_id = 0;
    int64_t l1_off = 0;
    size_t id_len, name_len, len;
    uint8_t *e;
    int ret;

    bd_co_mutex_lock(&s->meta_lock);
    for (guint i = 0; i < s->snapshot_info->len; i++) {
        const char *sid = ((Qcow2SnapshotInfo *)
                           s->snapshot_info->pdata[i])->id;

        max_id = MAX(max_id, g_ascii_strtoull(sid, NULL, 10));
    }
    id = g_strdup_printf("%" G_GUINT64_FORMAT, max_id + 1);
    /* the snapshot's copy of the active L1 table, as it is */
    if (s->l1_size) {
        l1 = g_new(uint64_t, s->l1_size);
        for (uint32_t i = 0; i < s->l1_size; i++) {
            l1[i] = GUINT64_TO_BE(__atomic_load_n(&s->l1_table[i],
                                                  __ATOMIC_RELAXED));
        }
        l1_off = qcow2_alloc_clusters(s, size_to_clusters(
                                          s, (int64_t)s->l1_size * 8));
        ret = l1_off < 0 ? (int)l1_off : 0;
        if (ret == 0) {
            ret = qcow2_pre_write_overlap_check(s, 0, l1_off,
                                                (int64_t)s->l1_size * 8);
        }
        if (ret == 0) {
            ret = bd_child_co_pwrite(s->file, l1_off,
                                     (int64_t)s->l1_size * 8, l1, 0);
        }
        if (ret < 0) {
            goto out;
        }
    }
    /* every cluster gets the snapshot's reference */
    ret = update_refcounts(s, s->l1_table, s->l1_size, 1, true);
    if (ret < 0) {
        goto out;
    }
    current_entries(s, entries, lens);
    id_len = strlen(id);
    name_len = strlen(c->name);
    len = 40 + 24 + id_len + name_len;
    e = g_malloc0(len);
    put_be64(e, l1_off);
    put_be32(e + 8, s->l1_size);
    put_be16(e + 12, id_len);
    put_be16(e + 14, name_len);
    put_be32(e + 16, c->date_sec);
    put_be32(e + 20, c->date_nsec);
    put_be64(e + 24, c->vm_clock_nsec);
    put_be32(e + 32, 0);                    /* no VM state */
    put_be32(e + 36, 24);                   /* extra data */
    put_be64(e + 40, 0);                    /* VM state size, 64 bits */
    put_be64(e + 48, s->size);              /* disk size */
    put_be64(e + 56, UINT64_MAX);           /* no icount */
    memcpy(e + 64, id, id_len);
    memcpy(e + 64 + id_len, c->name, name_len);
    g_ptr_array_add(entries, e);
    g_array_append_val(lens, len);
    ret = write_table(s, entries, lens);
out:
    bd_co_mutex_unlock(&s->meta_lock);
    c->ret = ret;
}

int qcow2_snapshot_create(BdNode *node, const char *name, int64_t date_sec,
                          int64_t date_nsec, int64_t vm_clock_nsec,
                          GError **errp)
{
    SnapCo c = { bd_node_get_opaque(node), NULL, name, date_sec, date_nsec,
                 vm_clock_nsec, errp, 0 };

    if (c.s->nb_snapshots >= QCOW_MAX_SNAPSHOTS) {
        c.ret = -EFBIG;
    } else if (has_data_file(c.s)) {
        c.ret = -ENOTSUP;
    } else if (qcow2_unusable(c.s)) {
        c.ret = -EIO;
    } else {
        bd_run_co(create_co, &c);
    }
    if (c.ret < 0) {
        bd_error_setg(errp, "%s", g_strerror(-c.ret));
    }
    return c.ret;
}

static void delete_co(void *opaque)
{
    SnapCo *c = opaque;
    Qcow2State *s = c->s;
    g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) lens = g_array_new(FALSE, FALSE, sizeof(size_t));
    g_autofree uint64_t *l1 = NULL;
    uint64_t l1_off = 0;
    uint32_t l1_size = 0;
    int found = -1, ret;

    bd_co_mutex_lock(&s->meta_lock);
    for (guint i = 0; i < s->snapshot_info->len && found < 0; i++) {
        Qcow2SnapshotInfo *sn = s->snapshot_info->pdata[i];

        if ((!c->id || !strcmp(c->id, sn->id)) &&
            (!c->name || !strcmp(c->name, sn->name))) {
            found = i;
            l1_off = sn->l1_offset;
            l1_size = sn->l1_size;
        }
    }
    if (found < 0) {
        bd_error_setg(c->errp, "Can't find the snapshot");
        ret = -ENOENT;
        goto out;
    }
    if (l1_size > QCOW_MAX_L1_SIZE / 8 ||
        offset_into_cluster(s, l1_off)) {
        bd_error_setg(c->errp, "Snapshot L1 table offset invalid");
        ret = -EINVAL;
        goto out;
    }
    l1 = g_new(uint64_t, MAX(l1_size, 1));
    ret = qcow2_child_pread(s->file, l1_off, (int64_t)l1_size * 8, l1);
    if (ret < 0) {
        bd_error_setg(c->errp, "Failed to read the snapshot's L1 table: %s",
                      g_strerror(-ret));
        goto out;
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    current_entries(s, entries, lens);
    g_ptr_array_remove_index(entries, found);
    g_array_remove_index(lens, found);
    ret = write_table(s, entries, lens);
    if (ret < 0) {
        bd_error_setg(c->errp, "Failed to remove snapshot from snapshot "
                      "list: %s", g_strerror(-ret));
        goto out;
    }
    /* from here a failure leaks clusters, no more */
    ret = update_refcounts(s, l1, l1_size, -1, false);
    if (ret == 0 && l1_size) {
        ret = qcow2_free_clusters(s, l1_off, (int64_t)l1_size * 8,
                                  s->discard_passthrough_snapshot);
    }
    if (ret < 0) {
        bd_error_setg(c->errp, "Failed to free the cluster and L1 table: "
                      "%s", g_strerror(-ret));
        goto out;
    }
    /* clusters now the active image's alone may be written in place */
    ret = update_refcounts(s, s->l1_table, s->l1_size, 0, true);
    if (ret == 0) {
        ret = qcow2_write_caches(s);
    }
    if (ret == 0) {
        ret = bd_child_co_flush(s->file);
    }
    if (ret < 0) {
        bd_error_setg(c->errp, "Failed to update snapshot status in disk: "
                      "%s", g_strerror(-ret));
    }
out:
    bd_co_mutex_unlock(&s->meta_lock);
    c->ret = ret;
}

int qcow2_snapshot_delete(BdNode *node, const char *id, const char *name,
                          GError **errp)
{
    SnapCo c = { bd_node_get_opaque(node), id, name, 0, 0, 0, errp, 0 };

    if (c.s->read_only) {
        /* what a write to a read-only node gets in QEMU */
        bd_error_setg(errp, "Failed to remove snapshot from snapshot list: "
                      "%s", g_strerror(EPERM));
        return -EPERM;
    }
    if (qcow2_unusable(c.s)) {
        bd_error_setg(errp, "%s", g_strerror(EIO));
        return -EIO;
    }
    bd_run_co(delete_co, &c);
    return c.ret;
}
