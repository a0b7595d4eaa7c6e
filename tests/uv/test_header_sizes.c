/* test_header_sizes.c - the sizes the public headers quote are the sizes the
 * library has: the structs (uv/reader.h, uv/writeq.h, uv/tunnel.h) and the allocations
 * made by a read-idle timeout, a loop's flush dispatcher, the cross-thread
 * block, the write-stall timer and a tunnel's idle timeout. The headers quote them for x86_64 Linux
 * with libuv 1.44, where they are pinned; elsewhere the tests are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#if defined(__x86_64__) && defined(__linux__) && UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR == 44
#define PINNED 1
#else
#define PINNED 0
#endif

static void read_cb(bh_reader *r, int status, void *ctx)
{
    (void)r, (void)status, (void)ctx;
}

/* What the calls since *before asked the allocator for. */
typedef struct asked {
    size_t attempts, bytes;
} asked;

static asked asked_since(const test_alloc_stats *before)
{
    test_alloc_stats now = test_alloc_stats_now();
    asked a = {now.attempts - before->attempts, now.requested_bytes - before->requested_bytes};
    return a;
}

/* Asserts what the calls since *before asked for: attempts allocations of
 * bytes in all. */
static void assert_asked(const test_alloc_stats *before, size_t attempts, size_t bytes)
{
    asked got = asked_since(before);
    assert_int_equal(got.attempts, attempts);
    assert_int_equal(got.bytes, bytes);
}

static void struct_sizes_quoted_in_the_headers_hold(void **state)
{
    (void)state;
    if (!PINNED)
        skip();
    assert_int_equal(sizeof(bh_writeq), 520);
    assert_int_equal(sizeof(bh_reader), 56);
    assert_int_equal(sizeof(bh_buf), 40);
    assert_int_equal(sizeof(uv_tcp_t), 248);
    assert_int_equal(sizeof(bh_tunnel), 1456);
}

static void a_read_idle_timeout_allocates_one_176_byte_block(void **state)
{
    (void)state;
    if (!PINNED)
        skip();
    uv_loop_t loop;
    uv_pipe_t a, b;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
    bh_buf buf;
    bh_reader r;
    assert_int_equal(bh_buf_init(&buf, 4096), BH_OK);
    assert_int_equal(bh_reader_init(&r, (uv_stream_t *)&a, &buf, 1024, read_cb, NULL), BH_OK);
    assert_int_equal(bh_reader_start(&r), BH_OK);
    test_alloc_stats before = test_alloc_stats_now();
    assert_int_equal(bh_reader_set_idle_timeout(&r, 60000), BH_OK);
    assert_asked(&before, 1, 176);
    bh_reader_close(&r);
    bh_buf_free(&buf);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
}

static void writeq_blocks_quoted_in_writeq_h_hold(void **state)
{
    (void)state;
    if (!PINNED)
        skip();
    uv_loop_t loop;
    uv_pipe_t a, b, c, d;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
    assert_int_equal(test_uv_socketpair(&loop, &c, &d), 0);
    bh_writeq q1, q2;
    assert_int_equal(bh_writeq_init(&q1, &loop, (uv_stream_t *)&a, NULL), BH_OK);
    assert_int_equal(bh_writeq_init(&q2, &loop, (uv_stream_t *)&c, NULL), BH_OK);

    /* The first queued write of a loop makes its flush dispatcher (296
     * bytes) besides the queue's ring; a second queue of the loop makes
     * only its ring. Small slices stay queued until the loop runs. */
    bh_bytes s;
    test_alloc_stats before = test_alloc_stats_now();
    s = bh_bytes_static("x", 1);
    assert_int_equal(bh_writeq_try_write_ff(&q1, &s), BH_OK);
    asked first = asked_since(&before);
    before = test_alloc_stats_now();
    s = bh_bytes_static("y", 1);
    assert_int_equal(bh_writeq_try_write_ff(&q2, &s), BH_OK);
    asked second = asked_since(&before);
    assert_int_equal(first.attempts, second.attempts + 1);
    assert_int_equal(first.bytes - second.bytes, 296);

    /* The cross-thread block (144 bytes) and the core's inbox (112). */
    before = test_alloc_stats_now();
    assert_int_equal(bh_writeq_enable_mt(&q1), BH_OK);
    assert_asked(&before, 2, 144 + 112);

    /* The write-stall timer block (192 bytes). */
    before = test_alloc_stats_now();
    assert_int_equal(bh_writeq_set_stall_timeout(&q1, 60000), BH_OK);
    assert_asked(&before, 1, 192);

    bh_writeq_close(&q1);
    bh_writeq_close(&q2);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
}

static void tunnel_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    (void)t, (void)status, (void)st;
    ++*(int *)ctx;
}

/* A tunnel's start allocates nothing without an idle timeout, and one
 * 184-byte block (its timer) with one (tunnel.h). */
static void tunnel_start_allocates_only_an_idle_timers_block(void **state)
{
    (void)state;
    if (!PINNED)
        skip();
    for (int timeout = 0; timeout < 2; timeout++) {
        uv_loop_t loop;
        uv_pipe_t a, b, c, d;
        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
        assert_int_equal(test_uv_socketpair(&loop, &c, &d), 0);
        bh_tunnel_config cfg = bh_tunnel_config_default();
        cfg.idle_timeout_ms = timeout ? 60000 : 0;
        bh_tunnel t;
        int done = 0;
        test_alloc_stats before = test_alloc_stats_now();
        assert_int_equal(bh_tunnel_start(&t, &loop, (uv_stream_t *)&a, (uv_stream_t *)&c, NULL,
                                         NULL, &cfg, tunnel_done, &done),
                         BH_OK);
        assert_asked(&before, timeout ? 1 : 0, timeout ? 184 : 0);
        bh_tunnel_abort(&t);
        uv_close((uv_handle_t *)&b, NULL);
        uv_close((uv_handle_t *)&d, NULL);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(done, 1);
        assert_int_equal(test_uv_loop_teardown(&loop), 0);
    }
}

TEST_MAIN(test_alloc_checked(struct_sizes_quoted_in_the_headers_hold),
          test_alloc_checked(tunnel_start_allocates_only_an_idle_timers_block),
          test_alloc_checked(a_read_idle_timeout_allocates_one_176_byte_block),
          test_alloc_checked(writeq_blocks_quoted_in_writeq_h_hold))
