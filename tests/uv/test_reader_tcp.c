/* test_reader_tcp.c - bh_reader over loopback TCP (127.0.0.1) on a real
 * libuv loop: fragmented and coalesced input give the same lines byte for
 * byte, and a peer reset reaches the callback as UV_ECONNRESET. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "reader_fixture.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#define RUN_TIMEOUT_MS 30000

typedef struct tcp_fixture {
    uv_loop_t loop;
    uv_tcp_t client; /* writer */
    uv_tcp_t server; /* accepted side, read through the bh_reader */
    collector c;
    feeder f;
    uint8_t *input;
    size_t input_len;
} tcp_fixture;

static tcp_fixture *tcp_new(size_t max_len)
{
    tcp_fixture *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(test_uv_tcp_pair(&t->loop, &t->client, &t->server), 0);
    /* Small lockstep writes go out at once instead of waiting for ACKs. */
    assert_int_equal(uv_tcp_nodelay(&t->client, 1), 0);
    collector_init(&t->c, (uv_stream_t *)&t->server, max_len, 0);
    return t;
}

static void tcp_run(tcp_fixture *t, feed_mode mode, int lockstep, int shutdown)
{
    feeder_init(&t->f, (uv_stream_t *)&t->client, t->input, t->input_len, mode, 99, lockstep,
                shutdown);
    t->c.feed = &t->f;
    collector_run(&t->c, &t->loop, RUN_TIMEOUT_MS);
}

static void tcp_free(tcp_fixture *t)
{
    collector_teardown(&t->c, &t->loop);
    free(t->input);
    free(t);
}

static void tcp_lines_survive(feed_mode mode, size_t nlines, size_t max_line)
{
    tcp_fixture *t = tcp_new(1 << 20);
    t->input = make_lines(21, nlines, max_line, 23, &t->input_len);
    tcp_run(t, mode, mode != FEED_ALL, 1);

    assert_int_equal(t->f.write_error, 0);
    assert_int_equal(t->c.final_calls, 1);
    assert_int_equal(t->c.final_status, UV_EOF);
    assert_int_equal(t->c.received, t->input_len);
    assert_int_equal(t->c.tail_at_final, 23);
    assert_int_equal(t->c.nlines, nlines);
    collector_assert_matches(&t->c, t->input, t->input_len);
    tcp_free(t);
}

static void tcp_one_byte_writes_yield_the_same_lines_byte_exact(void **state)
{
    (void)state;
    tcp_lines_survive(FEED_ONE_BYTE, 200, 30);
}

static void tcp_random_size_writes_yield_the_same_lines_byte_exact(void **state)
{
    (void)state;
    tcp_lines_survive(FEED_RANDOM, 2000, 100);
}

static void tcp_single_large_write_yields_the_same_lines_byte_exact(void **state)
{
    (void)state;
    tcp_lines_survive(FEED_ALL, 20000, 200); /* ~2 MB, many reads */
}

static void reset_peer_once_all_read(collector *c, int status)
{
    tcp_fixture *t = c->test_ctx;
    if (status != BH_OK || c->received < t->input_len || uv_is_closing((uv_handle_t *)&t->client))
        return;
    uv_os_fd_t fd;
    struct linger lg = {1, 0}; /* close() sends RST */
    assert_int_equal(uv_fileno((uv_handle_t *)&t->client, &fd), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    uv_close((uv_handle_t *)&t->client, NULL);
}

/* Sends msg in one write, with hook acting on the peer once it was read;
 * returns the fixture after the reader ended, for the test to inspect. */
static tcp_fixture *tcp_send_then(const char *msg, void (*hook)(collector *c, int status))
{
    tcp_fixture *t = tcp_new(4096);
    t->input_len = strlen(msg);
    t->input = malloc(t->input_len);
    memcpy(t->input, msg, t->input_len);
    t->c.hook = hook;
    t->c.test_ctx = t;
    tcp_run(t, FEED_ALL, 1, 0);
    return t;
}

static void tcp_peer_reset_reaches_the_callback_as_econnreset(void **state)
{
    (void)state;
    tcp_fixture *t = tcp_send_then("hello\nwor", reset_peer_once_all_read);
    assert_int_equal(t->c.final_calls, 1);
    assert_int_equal(t->c.final_status, UV_ECONNRESET);
    /* What was read before the reset is intact. */
    assert_int_equal(t->c.nlines, 1);
    assert_int_equal(bh_buf_len(&t->c.buf), 3);
    collector_assert_matches(&t->c, t->input, t->input_len);
    assert_int_equal(bh_reader_start(&t->c.reader), BH_ECLOSED);
    tcp_free(t);
}

/* The peer writes and resets (SO_LINGER 0) before the reader reads, with
 * or without a FIN first: libuv reads the data and then reports the RST as
 * EOF (POLLHUP after a partial read); the reader checks SO_ERROR and
 * reports UV_ECONNRESET, so the cut stream never looks complete. */
static void tcp_reset_right_behind_data_reaches_the_callback_as_econnreset_not_eof(void **state)
{
    (void)state;
    static const char msg[] = "all of this arrives, then the RST\n";
    for (int fin_first = 0; fin_first < 2; fin_first++) {
        tcp_fixture *t = tcp_new(4096);
        uv_os_fd_t fd;
        struct linger lg = {1, 0};
        uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
        assert_int_equal(uv_try_write((uv_stream_t *)&t->client, &b, 1), (int)sizeof msg - 1);
        assert_int_equal(uv_fileno((uv_handle_t *)&t->client, &fd), 0);
        if (fin_first)
            assert_int_equal(shutdown(fd, SHUT_WR), 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        uv_close((uv_handle_t *)&t->client, NULL);
        assert_int_equal(bh_reader_start(&t->c.reader), BH_OK);
        assert_int_equal(test_uv_run(&t->loop, RUN_TIMEOUT_MS), 0);
        assert_int_equal(t->c.final_calls, 1);
        assert_int_equal(t->c.final_status, UV_ECONNRESET);
        assert_int_equal(t->c.received, sizeof msg - 1);
        t->input = malloc(sizeof msg);
        memcpy(t->input, msg, sizeof msg - 1);
        t->input_len = sizeof msg - 1;
        tcp_free(t);
    }
}

TEST_MAIN(test_alloc_checked(tcp_one_byte_writes_yield_the_same_lines_byte_exact),
          test_alloc_checked(tcp_random_size_writes_yield_the_same_lines_byte_exact),
          test_alloc_checked(tcp_single_large_write_yields_the_same_lines_byte_exact),
          test_alloc_checked(tcp_peer_reset_reaches_the_callback_as_econnreset),
          test_alloc_checked(tcp_reset_right_behind_data_reaches_the_callback_as_econnreset_not_eof))
