/*
 * What marking dirty bitmaps costs each write: the request layer's
 * bd_node_set_dirty() for 4 KiB writes at random offsets of a 512 MiB
 * node with 0, 1 and 8 enabled bitmaps (granularities 512 B to 64 KiB, as
 * bench-qcow2-bitmaps.py adds them).  Prints nanoseconds per write, to set
 * beside the CPU time a write costs the daemon (bench-qcow2-bitmaps.py
 * prints it).  Never fails on a speed.
 *
 * Usage: bench-dirty-bitmap [writes]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib.h>

#include "block/block-int.h"
#include "block/dirty-bitmap.h"

#define NODE_SIZE (512ll << 20)

static double now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    static const uint32_t gran[8] = { 512, 1024, 4096, 8192, 16384, 32768,
                                      65536, 65536 };
    static const int counts[] = { 0, 1, 8 };
    long n = argc > 1 ? atol(argv[1]) : 5000000;

    for (size_t c = 0; c < G_N_ELEMENTS(counts); c++) {
        BdNode *node = g_new0(BdNode, 1);
        uint64_t x = 88172645463325252ull;
        double t0, t1;

        bd_node_dirty_bitmaps_init(node);
        node->total_bytes = NODE_SIZE;
        for (int i = 0; i < counts[c]; i++) {
            g_autofree char *name = g_strdup_printf("b%d", i);

            bd_dirty_bitmap_create_sized(node, NODE_SIZE, gran[i], name,
                                         NULL);
        }
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bd_node_set_dirty(node, (int64_t)(x % (NODE_SIZE / 4096)) * 4096,
                              4096);
        }
        t1 = now_ns();
        printf("%d bitmap%s: %6.1f ns per 4 KiB write\n", counts[c],
               counts[c] == 1 ? " " : "s", (t1 - t0) / n);
        bd_node_dirty_bitmaps_release_all(node);
        g_free(node);
    }
    return 0;
}
