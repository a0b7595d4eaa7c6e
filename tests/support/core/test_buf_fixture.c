/* test_buf_fixture.c - bh_buf starting states for the tests (see
 * test_buf_fixture.h). */
#include "test_buf_fixture.h"

#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

void test_buf_reserved(bh_buf *b, size_t max_len, size_t n, uint8_t **spare, size_t *spare_len)
{
    assert_int_equal(bh_buf_init(b, max_len), BH_OK);
    assert_int_equal(bh_buf_reserve(b, n, spare, spare_len), BH_OK);
}

void test_buf_holding(bh_buf *b, size_t max_len, const void *data, size_t n)
{
    assert_int_equal(bh_buf_init(b, max_len), BH_OK);
    assert_int_equal(bh_buf_append(b, data, n), BH_OK);
}
