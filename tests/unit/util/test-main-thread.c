/*
 * util/main-thread.c: a main-loop-only ABI function called from another
 * thread stops the process with its name; from the main thread it runs.
 */
#include <glib.h>

#include <blockd/block.h>

#include "aio/aio-context.h"
#include "util/main-thread.h"

static gpointer call_node_find(gpointer unused)
{
    bd_node_find("nothing");
    return NULL;
}

static void test_main_loop_only(void)
{
    bd_aio_main_context();          /* records this as the main thread */
    if (g_test_subprocess()) {
        g_assert_true(bd_in_main_thread());
        g_assert_null(bd_node_find("nothing"));
        g_thread_join(g_thread_new("not-main", call_node_find, NULL));
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*bd_node_find called outside the main loop*");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/main-thread/main-loop-only", test_main_loop_only);
    return g_test_run();
}
