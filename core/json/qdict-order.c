/*
 * QEMU's QDict iteration order (see qdict-order.h).
 */
#include <stdlib.h>
#include <string.h>

#include "json/qdict-order.h"

/* The number of hash buckets of QEMU's QDict. */
#define QDICT_BUCKETS 512

/* The hash QEMU's QDict uses to pick a key's bucket. */
static unsigned qdict_bucket(const char *key)
{
    const unsigned char *p = (const unsigned char *)key;
    guint32 h = 0x238F13AFu * (guint32)strlen(key);

    for (unsigned i = 0; p[i]; i++) {
        h += (guint32)p[i] << (i * 5 % 24);
    }
    return (1103515243u * h + 12345u) % QDICT_BUCKETS;
}

typedef struct Member {
    const char *name;
    unsigned bucket;
    unsigned index;
} Member;

static int member_cmp(const void *a, const void *b)
{
    const Member *x = a, *y = b;

    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    /* QDict puts new entries at the head of their bucket */
    return x->index > y->index ? -1 : (x->index < y->index ? 1 : 0);
}

GList *bd_qdict_member_order(JsonObject *obj)
{
    g_autoptr(GList) names = json_object_get_members(obj);
    guint n = g_list_length(names);
    g_autofree Member *m = g_new(Member, n ? n : 1);
    GList *out = NULL;
    guint i = 0;

    for (GList *l = names; l; l = l->next, i++) {
        m[i].name = l->data;
        m[i].bucket = qdict_bucket(l->data);
        m[i].index = i;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    for (i = n; i-- > 0;) {
        out = g_list_prepend(out, (gpointer)m[i].name);
    }
    return out;
}
