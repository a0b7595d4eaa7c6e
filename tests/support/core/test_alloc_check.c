/* test_alloc_check.c - the end-of-test leak check on top of the counting
 * allocator (cmocka assertions; test_alloc.c itself stays free of cmocka so
 * that fuzzers can link it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"

void test_alloc_finish(void)
{
    bh_thread_cache_trim(); /* blocks readers gave back are cached, not leaked */
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    test_alloc_uninstall();
    assert_int_equal(st.live, 0);
}

int test_alloc_setup(void **state)
{
    (void)state;
    test_alloc_install(0);
    return 0;
}

int test_alloc_teardown(void **state)
{
    (void)state;
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    test_alloc_uninstall();
    assert_int_equal(st.live, 0);
    return 0;
}

int test_alloc_finish_teardown(void **state)
{
    (void)state;
    if (test_alloc_installed()) {
        test_alloc_finish();
    } else {
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        assert_int_equal(st.live, 0);
    }
    return 0;
}
