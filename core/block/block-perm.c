/*
 * The permission model: every edge into a node (a parent's child or a
 * BlockBackend's root) takes some permissions and shares some; a node's
 * users must not take what another user of the same node does not share,
 * and nobody may write to a read-only node.  A change is checked through
 * the whole subtree below it as one transaction: on any refusal every
 * edge, every node and every driver (abort_perm) is back as before.
 */
#include <blockd/error.h>

#include "block/block-int.h"
#include "util/main-thread.h"

#define PERM_PASSTHROUGH (BD_PERM_CONSISTENT_READ | BD_PERM_WRITE | \
                          BD_PERM_WRITE_UNCHANGED | BD_PERM_RESIZE)
#define PERM_UNCHANGED (BD_PERM_ALL & ~PERM_PASSTHROUGH)

static const char *const perm_names[] = {
    "consistent read", "write", "write unchanged", "resize",
    "change children",
};

char *bd_perm_names(uint64_t perm)
{
    GString *s = g_string_new(NULL);

    for (unsigned i = 0; i < G_N_ELEMENTS(perm_names); i++) {
        if (perm & (1u << i)) {
            g_string_append_printf(s, "%s%s", s->len ? ", " : "",
                                   perm_names[i]);
        }
    }
    return g_string_free(s, FALSE);
}

void bd_block_default_child_perm(BdNode *node, BdChild *child,
                                 BdChildRole role, uint64_t perm,
                                 uint64_t shared, uint64_t *nperm,
                                 uint64_t *nshared)
{
    BD_ASSERT_MAIN_LOOP();
    if (role & BD_CHILD_FILTERED) {
        *nperm = perm & PERM_PASSTHROUGH;
        *nshared = (shared & PERM_PASSTHROUGH) | PERM_UNCHANGED;
    } else if (role & BD_CHILD_COW) {
        *nperm = perm & BD_PERM_CONSISTENT_READ;
        *nshared = (shared & BD_PERM_WRITE) ?
            BD_PERM_WRITE | BD_PERM_RESIZE : 0;
        *nshared |= BD_PERM_CONSISTENT_READ | BD_PERM_WRITE_UNCHANGED;
    } else {
        uint64_t p = perm & PERM_PASSTHROUGH;
        uint64_t s = (shared & PERM_PASSTHROUGH) | PERM_UNCHANGED;

        if (role & BD_CHILD_METADATA) {
            if (!bd_node_is_read_only(node)) {
                p |= BD_PERM_WRITE | BD_PERM_RESIZE;
            }
            p |= BD_PERM_CONSISTENT_READ;
            s &= ~(BD_PERM_WRITE | BD_PERM_RESIZE);
        }
        if (role & BD_CHILD_DATA) {
            s &= ~BD_PERM_RESIZE;
            if (p & BD_PERM_WRITE_UNCHANGED) {
                p |= BD_PERM_WRITE;
            }
            if (p & BD_PERM_WRITE) {
                p |= BD_PERM_RESIZE;
            }
        }
        *nperm = p;
        *nshared = s;
    }
    if (bd_node_get_open_flags(node) & BD_OPEN_FORCE_SHARE) {
        *nshared = BD_PERM_ALL;
    }
}

typedef struct EdgeSave {
    BdChild *child;
    uint64_t perm, shared;
} EdgeSave;

typedef struct NodeSave {
    BdNode *node;
    uint64_t perm, shared;
} NodeSave;

typedef struct PermTx {
    GArray *edges;      /* EdgeSave */
    GArray *nodes;      /* NodeSave, nodes whose check_perm ran */
} PermTx;

static char *user_desc(BdChild *c)
{
    if (c->parent) {
        return g_strdup_printf("node '%s'", c->parent->node_name);
    }
    if (c->blk && bd_blk_name(c->blk)) {
        return g_strdup_printf("block device '%s'", bd_blk_name(c->blk));
    }
    return g_strdup("an unnamed block device");
}

/* Whether @a's sharing allows what @b takes (QEMU's wording if not). */
static bool a_allows_b(BdNode *node, BdChild *a, BdChild *b, GError **errp)
{
    g_autofree char *a_user = NULL;
    g_autofree char *b_user = NULL;
    g_autofree char *perms = NULL;

    if ((b->perm & a->shared) == b->perm) {
        return true;
    }
    a_user = user_desc(a);
    b_user = user_desc(b);
    perms = bd_perm_names(b->perm & ~a->shared);
    bd_error_setg(errp,
                  "Permission conflict on node '%s': permissions '%s' are "
                  "both required by %s (uses node '%s' as '%s' child) and "
                  "unshared by %s (uses node '%s' as '%s' child).",
                  node->node_name, perms, b_user, node->node_name, b->name,
                  a_user, node->node_name, a->name);
    return false;
}

static bool refresh_node(BdNode *node, PermTx *tx, GError **errp)
{
    uint64_t perm = 0, shared = BD_PERM_ALL;
    NodeSave save = { node, node->perm, node->shared };

    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *a = node->parents->pdata[i];

        perm |= a->perm;
        shared &= a->shared;
        for (guint j = 0; j < node->parents->len; j++) {
            if (i != j && !a_allows_b(node, a, node->parents->pdata[j],
                                      errp)) {
                return false;
            }
        }
    }
    if ((perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED)) &&
        node->read_only) {
        bd_error_setg(errp, "Block node is read-only");
        return false;
    }
    if (node->drv->check_perm &&
        !node->drv->check_perm(node, perm, shared, errp)) {
        return false;
    }
    g_array_append_val(tx->nodes, save);
    node->perm = perm;
    node->shared = shared;

    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];
        uint64_t nperm, nshared;

        if (node->drv->child_perm) {
            node->drv->child_perm(node, c, c->role, perm, shared, &nperm,
                                  &nshared);
        } else {
            bd_block_default_child_perm(node, c, c->role, perm, shared,
                                        &nperm, &nshared);
        }
        if (nperm == c->perm && nshared == c->shared) {
            continue;
        }
        EdgeSave e = { c, c->perm, c->shared };
        g_array_append_val(tx->edges, e);
        c->perm = nperm;
        c->shared = nshared;
        if (!refresh_node(c->node, tx, errp)) {
            return false;
        }
    }
    return true;
}

static void tx_finish(PermTx *tx, bool ok)
{
    if (ok) {
        for (guint i = 0; i < tx->nodes->len; i++) {
            BdNode *n = g_array_index(tx->nodes, NodeSave, i).node;

            if (n->drv->set_perm) {
                n->drv->set_perm(n, n->perm, n->shared);
            }
        }
    } else {
        for (guint i = tx->nodes->len; i-- > 0;) {
            NodeSave *s = &g_array_index(tx->nodes, NodeSave, i);

            s->node->perm = s->perm;
            s->node->shared = s->shared;
            if (s->node->drv->abort_perm) {
                s->node->drv->abort_perm(s->node);
            }
        }
        for (guint i = tx->edges->len; i-- > 0;) {
            EdgeSave *e = &g_array_index(tx->edges, EdgeSave, i);

            e->child->perm = e->perm;
            e->child->shared = e->shared;
        }
    }
    g_array_unref(tx->edges);
    g_array_unref(tx->nodes);
}

static bool update(BdChild *changed, uint64_t perm, uint64_t shared,
                   BdNode *node, GError **errp)
{
    PermTx tx = {
        g_array_new(FALSE, FALSE, sizeof(EdgeSave)),
        g_array_new(FALSE, FALSE, sizeof(NodeSave)),
    };
    bool ok;

    if (changed) {
        EdgeSave e = { changed, changed->perm, changed->shared };
        g_array_append_val(tx.edges, e);
        changed->perm = perm;
        changed->shared = shared;
    }
    ok = refresh_node(node, &tx, errp);
    tx_finish(&tx, ok);
    return ok;
}

bool bd_child_set_perm(BdChild *child, uint64_t perm, uint64_t shared,
                       GError **errp)
{
    return update(child, perm, shared, child->node, errp);
}

bool bd_node_refresh_perms(BdNode *node, GError **errp)
{
    return update(NULL, 0, 0, node, errp);
}
