/* test_queue_support.c - queue fixture, ticket recorder and write-all
 * driver for the bh_queue core tests. */
#include "test_queue_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void qt_ticket_cb(bh_queue *q, int status, void *ctx)
{
    (void)q;
    test_ticket_record(ctx, status);
}

qfx *qfx_new(size_t max_items, size_t max_bytes)
{
    qfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < sizeof f->pattern; i++)
        f->pattern[i] = (uint8_t)((i * 0x9E3779B1u) >> 24);
    bh_queue_config cfg = {max_items, max_bytes};
    assert_int_equal(bh_queue_init(&f->q, &cfg, NULL), BH_OK);
    return f;
}

struct bh_queue_stats qfx_stats(const qfx *f)
{
    struct bh_queue_stats s;
    bh_queue_stats(&f->q, &s);
    return s;
}

struct bh_queue_stats qfx_expect_queued(const qfx *f, size_t items, size_t bytes)
{
    struct bh_queue_stats s = qfx_stats(f);
    assert_int_equal(s.queued_items, items);
    assert_int_equal(s.queued_bytes, bytes);
    return s;
}

void qfx_free(qfx *f)
{
    bh_queue_inbox_free(bh_queue_close(&f->q));
    qfx_expect_queued(f, 0, 0);
    free(f);
}

int qfx_push(qfx *f, size_t n, qt_ticket *t)
{
    assert_true(f->off + n <= sizeof f->pattern);
    bh_bytes b = bh_bytes_static(f->pattern + f->off, n);
    int rc = bh_queue_push(&f->q, &b, t ? qt_ticket_cb : NULL, t);
    if (rc == BH_OK) {
        assert_null(b.ptr);
        assert_int_equal(b.len, 0);
        f->off += n;
    } else {
        assert_ptr_equal(b.ptr, f->pattern + f->off);
        assert_int_equal(b.len, n);
    }
    return rc;
}

bh_bytes qfx_slice(qfx *f, size_t n)
{
    assert_true(f->off + n <= sizeof f->pattern);
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, f->pattern + f->off, n), BH_OK);
    f->off += n;
    return b;
}

size_t qfx_write_all(qfx *f)
{
    size_t done = 0;
    bh_queue_batch b;
    while (bh_queue_batch_next(&f->q, SIZE_MAX, &b))
        done += bh_queue_batch_done(&f->q, b.bytes);
    return done;
}
