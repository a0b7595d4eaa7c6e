/* test_buf_fixture.h - bh_buf starting states shared by the buffer and
 * block-cache tests; every step is checked with a cmocka assertion. */
#ifndef BH_TEST_BUF_FIXTURE_H
#define BH_TEST_BUF_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>

/* Initialises b with max_len and reserves room for n bytes (its spare
 * window in *spare / *spare_len when those are set). */
void test_buf_reserved(bh_buf *b, size_t max_len, size_t n, uint8_t **spare, size_t *spare_len);
/* Initialises b with max_len and appends data[0..n). */
void test_buf_holding(bh_buf *b, size_t max_len, const void *data, size_t n);

#endif
