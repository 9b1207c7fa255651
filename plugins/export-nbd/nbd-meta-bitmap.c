/*
 * export-nbd: the "qemu:dirty-bitmap:NAME" metadata contexts: which
 * bitmaps a query selects and their names (their block status is built
 * with the other contexts' in nbd-meta.c).
 */
#include <string.h>

#include "nbd-meta.h"

void nbd_meta_bitmaps_clear(NbdMetaBitmaps *mb)
{
    g_clear_pointer(&mb->sel, g_free);
    mb->nr = 0;
    mb->count = 0;
}

/* Whether @q, relative to "qemu:dirty-bitmap:", selects bitmap @name. */
static bool query_selects(const char *q, const char *name, bool list)
{
    if (list && (strcmp(q, "qemu:") == 0 ||
                 strcmp(q, NBD_META_DIRTY_BITMAP_PREFIX) == 0)) {
        return true;
    }
    return g_str_has_prefix(q, NBD_META_DIRTY_BITMAP_PREFIX) &&
           strcmp(q + strlen(NBD_META_DIRTY_BITMAP_PREFIX), name) == 0;
}

void nbd_meta_select_bitmaps(const NbdExport *e, const NbdMetaRequest *req,
                             bool list, NbdMetaBitmaps *mb)
{
    mb->nr = e->nr_bitmaps;
    mb->count = 0;
    mb->sel = e->nr_bitmaps ? g_new0(bool, e->nr_bitmaps) : NULL;
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        const char *name = bd_dirty_bitmap_name(e->bitmaps[i]);
        bool on = list && req->queries->len == 0;

        for (guint j = 0; !on && j < req->queries->len; j++) {
            on = query_selects(g_ptr_array_index(req->queries, j), name,
                               list);
        }
        mb->sel[i] = on;
        mb->count += on;
    }
}

char *nbd_meta_bitmap_context(const NbdExport *e, unsigned i)
{
    return g_strconcat(NBD_META_DIRTY_BITMAP_PREFIX,
                       bd_dirty_bitmap_name(e->bitmaps[i]), NULL);
}
