/*
 * util/id.c: QEMU's id rule and generated names.
 */
#include <string.h>

#include <glib.h>

#include "util/id.h"

static void test_wellformed(void)
{
    g_assert_true(bd_id_wellformed("a"));
    g_assert_true(bd_id_wellformed("node-1.x_y"));
    g_assert_false(bd_id_wellformed(""));
    g_assert_false(bd_id_wellformed("1abc"));
    g_assert_false(bd_id_wellformed("-a"));
    g_assert_false(bd_id_wellformed("a b"));
    g_assert_false(bd_id_wellformed("a#"));
    g_assert_false(bd_id_wellformed("#block000"));
}

static void test_generate(void)
{
    uint64_t counter = 7;
    g_autofree char *a = bd_id_generate("block", &counter);
    g_autofree char *b = bd_id_generate("block", &counter);

    /* "#block", the counter, two digits; never well-formed */
    g_assert_true(g_str_has_prefix(a, "#block7"));
    g_assert_cmpuint(strlen(a), ==, strlen("#block7") + 2);
    g_assert_true(g_ascii_isdigit(a[7]) && g_ascii_isdigit(a[8]));
    g_assert_true(g_str_has_prefix(b, "#block8"));
    g_assert_cmpuint(counter, ==, 9);
    g_assert_false(bd_id_wellformed(a));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/id/wellformed", test_wellformed);
    g_test_add_func("/id/generate", test_generate);
    return g_test_run();
}
