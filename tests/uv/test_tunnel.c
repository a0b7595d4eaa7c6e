/* test_tunnel.c - bh_tunnel over real loopback TCP: tails, byte-exact relay
 * both ways, backpressure with bounded memory, half-close, reset, idle
 * timeout, splice on/off and its fallback, allocation failures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_main.h"
#include "tunnel_fixture.h"

#define RUN_MS 240000u /* a safety bound only: nothing is timed */

static int huge_skipped(void) { return getenv("BH_SKIP_HUGE_TESTS") != NULL; }

/* Stream sizes: smaller under TSan and valgrind (BH_SKIP_HUGE_TESTS). */
static size_t mib(size_t n) { return huge_skipped() ? n << 17 : n << 20; }

static bh_tunnel_config config(int splice)
{
    bh_tunnel_config c = bh_tunnel_config_default();
    c.splice = splice;
    return c;
}

static void start(tf *t, const bh_tunnel_config *c, bh_buf *a_tail, bh_buf *b_tail)
{
    assert_int_equal(bh_tunnel_start(&t->tunnel, &t->loop, (uv_stream_t *)&t->side[0],
                                     (uv_stream_t *)&t->side[1], a_tail, b_tail, c, tf_done, t),
                     0);
    tf_start_peers(t);
}

/* Starts the tunnel without tails and runs it to its end, which must come
 * with status. */
static void run_to_status(tf *t, const bh_tunnel_config *c, int status)
{
    start(t, c, NULL, NULL);
    assert_int_equal(tf_run(t, RUN_MS), 0);
    assert_int_equal(t->status, status);
}

static void assert_peer_got_all(const tf_peer *p, size_t expected)
{
    assert_int_equal(p->mismatch_at, SIZE_MAX);
    assert_int_equal(p->received, expected);
    assert_int_equal(p->recv_end, 0);
}

/* Both peers send len bytes in chunks of up to chunk bytes and half-close;
 * everything arrives byte-exact and the tunnel ends cleanly. */
static void relay_both_ways(size_t len, size_t chunk, const bh_tunnel_config *c, tf *t)
{
    tf_setup(t);
    for (int s = 0; s < 2; s++) {
        t->peer[s].send_len = len;
        t->peer[s].max_chunk = chunk;
    }
    start(t, c, NULL, NULL);
    assert_int_equal(tf_run(t, RUN_MS), 0);
    assert_int_equal(t->done_calls, 1);
    assert_int_equal(t->status, 0);
    for (int s = 0; s < 2; s++) {
        assert_peer_got_all(&t->peer[s], len);
        assert_int_equal(t->final.bytes[s], len);
        assert_int_equal(t->final.eof[s], 1);
        assert_int_equal(t->final.reset[s], 0);
    }
}

static void tails_are_written_first_byte_exact(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    static const char ta[] = "already read from A after the marker";
    static const char tb[] = "B's early reply";
    bh_buf a_tail, b_tail;
    bh_buf_init(&a_tail, 1024);
    bh_buf_init(&b_tail, 1024);
    assert_int_equal(bh_buf_append(&a_tail, ta, sizeof ta - 1), 0);
    assert_int_equal(bh_buf_append(&b_tail, tb, sizeof tb - 1), 0);
    const uint8_t *a_ptr = bh_buf_data(&a_tail);
    t.peer[0].send_len = t.peer[1].send_len = 100000;
    t.peer[1].prefix = (const uint8_t *)ta; /* B receives A's tail first */
    t.peer[1].prefix_len = sizeof ta - 1;
    t.peer[0].prefix = (const uint8_t *)tb;
    t.peer[0].prefix_len = sizeof tb - 1;
    bh_tunnel_config c = config(0);
    start(&t, &c, &a_tail, &b_tail);
    /* The tunnel took the tails' content: the caller's bufs are empty. */
    assert_int_equal(bh_buf_len(&a_tail), 0);
    assert_int_equal(bh_buf_len(&b_tail), 0);
    assert_non_null(a_ptr);
    bh_buf_free(&a_tail);
    bh_buf_free(&b_tail);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.status, 0);
    assert_peer_got_all(&t.peer[1], sizeof ta - 1 + 100000);
    assert_peer_got_all(&t.peer[0], sizeof tb - 1 + 100000);
    assert_int_equal(t.final.bytes[0], sizeof ta - 1 + 100000);
}

static void tail_longer_than_the_budget_goes_out_in_pieces(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    size_t n = 50000;
    uint8_t *ta = malloc(n);
    for (size_t i = 0; i < n; i++)
        ta[i] = (uint8_t)(i * 7 + 3);
    bh_buf a_tail;
    bh_buf_init(&a_tail, n);
    assert_int_equal(bh_buf_append(&a_tail, ta, n), 0);
    t.peer[1].prefix = ta;
    t.peer[1].prefix_len = n;
    t.peer[0].send_len = 3000;
    bh_tunnel_config c = config(1);
    c.max_bytes = 4096;
    start(&t, &c, &a_tail, NULL);
    bh_buf_free(&a_tail);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.status, 0);
    assert_peer_got_all(&t.peer[1], n + 3000);
    assert_peer_got_all(&t.peer[0], 0);
    free(ta);
}

/* 3 MiB each way in random 1..700-byte writes through 1000-byte reads and
 * a 3000-byte budget. */
static void relay_fragmented(int splice, tf *t)
{
    bh_tunnel_config c = config(splice);
    c.read_reserve = 1000;
    c.max_bytes = 3000;
    relay_both_ways(mib(3), 700, &c, t);
}

static void relays_byte_exact_with_random_fragmentation_buffers_only(void **state)
{
    (void)state;
    tf t;
    relay_fragmented(0, &t);
    assert_int_equal(t.final.spliced[0] + t.final.spliced[1], 0);
}

static void relays_byte_exact_with_random_fragmentation_splice_on(void **state)
{
    (void)state;
    tf t;
    relay_fragmented(1, &t);
}

/* Large writes make both directions take the splice path; the bytes are the
 * same as on the buffer path (both are checked against the same streams). */
static void splice_on_and_off_deliver_identical_bytes(void **state)
{
    (void)state;
    tf t;
    bh_tunnel_config on = config(1), off = config(0);
    relay_both_ways(mib(8), 65536, &off, &t);
    assert_int_equal(t.final.spliced[0] + t.final.spliced[1], 0);
    relay_both_ways(mib(8), 65536, &on, &t);
    assert_true(t.final.spliced[0] > 0);
    assert_true(t.final.spliced[1] > 0);
}

/* The bound stated in uv.h, per direction: the bytes in flight (the queue's
 * budget and one held read) spread over blocks of read_reserve bytes each
 * filled to at least 3/4 before the next, plus the one being read into and
 * the partly written head; and the queue's arrays at max_items. 256 bytes
 * per block and 4 KiB per queue cover block headers, malloc's rounding and
 * the loop's flush dispatcher. */
static size_t tunnel_memory_bound(const bh_tunnel_config *c)
{
    size_t per_block = 3 * c->read_reserve / 4;
    size_t blocks = 2 + (c->max_bytes + c->read_reserve + per_block - 1) / per_block;
    size_t arrays = BH_WRITEQ_MAX_ITEMS_DEFAULT * (sizeof(bh_queue_item) + sizeof(struct iovec));
    return 2 * (blocks * (c->read_reserve + 256) + arrays + 4096);
}

/* 64 MiB each way through 4 KiB reads and an 8 KiB budget per direction:
 * backpressure holds the library's memory to the bound stated in uv.h. */
static void sixty_four_mib_each_way_through_tiny_budgets_stays_bounded(void **state)
{
    (void)state;
    size_t len = huge_skipped() ? (size_t)4 << 20 : (size_t)64 << 20;
    for (int splice = 0; splice < 2; splice++) {
        tf t;
        bh_tunnel_config c = config(splice);
        c.read_reserve = 4096;
        c.max_bytes = 8192;
        test_alloc_install(0);
        relay_both_ways(len, 65536, &c, &t);
        bh_thread_cache_trim(); /* blocks the readers gave back */
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        size_t bound = tunnel_memory_bound(&c);
        assert_true(st.peak_bytes <= bound);
        assert_int_equal(st.live, 0);
        test_alloc_uninstall();
    }
}

/* One peer half-closes first and keeps reading; the other keeps sending,
 * sees the EOF, then sends more and half-closes. */
static void half_close(void **state)
{
    int first = *(const int *)*state;
    tf t;
    tf_setup(&t);
    t.peer[first].send_len = 200000;
    t.peer[1 - first].send_len = 300000;
    t.peer[1 - first].wait_for_eof = 1; /* sends only after the EOF arrived */
    bh_tunnel_config c = config(1);
    run_to_status(&t, &c, 0);
    assert_peer_got_all(&t.peer[1 - first], 200000);
    assert_peer_got_all(&t.peer[first], 300000);
    assert_int_equal(t.final.eof[0], 1);
    assert_int_equal(t.final.eof[1], 1);
}

/* The resetting peer sends len bytes and closes with SO_LINGER 0 at once
 * (the RST right behind its data): the other peer's read ends in
 * ECONNRESET, never in a clean EOF, whatever it received before. */
static void reset_by(int who, size_t len, int splice)
{
    tf t;
    tf_setup(&t);
    t.peer[who].send_len = len;
    t.peer[who].end = PEER_RESET;
    t.peer[who].no_receiver = 1;
    t.peer[1 - who].send_len = 1 << 20;
    t.peer[1 - who].end = PEER_STAY;
    bh_tunnel_config c = config(splice);
    start(&t, &c, NULL, NULL);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.done_calls, 1);
    /* The reset shows on the reader (UV_ECONNRESET) or first as a refused
     * write to the resetting side (UV_EPIPE). */
    assert_true(t.status == UV_ECONNRESET || t.status == UV_EPIPE);
    assert_int_equal(t.peer[1 - who].recv_end, ECONNRESET);
    assert_int_equal(t.peer[1 - who].mismatch_at, SIZE_MAX);
    assert_true(t.peer[1 - who].received <= len);
    assert_int_equal(t.final.reset[who], 1);
}

static void reset_by_a_right_after_its_data_resets_b(void **state)
{
    (void)state;
    reset_by(0, 100000, 0);
    reset_by(0, 100, 0);
}

static void reset_by_b_right_after_its_data_resets_a(void **state)
{
    (void)state;
    reset_by(1, 100000, 0);
    reset_by(1, 100, 0);
}

static void reset_mid_stream_while_splicing_resets_the_other_side(void **state)
{
    (void)state;
    reset_by(0, mib(8), 1);
    reset_by(1, mib(8), 1);
}

/* Data and the RST (after a FIN when fin_first) are already queued on side
 * a when the tunnel starts: libuv reads the data and reports EOF (its
 * POLLHUP shortcut, or the FIN); SO_ERROR tells the reset, so B sees one. */
static void reset_queued_behind_data(void **state)
{
    int fin_first = *(const int *)*state;
    tf t;
    tf_setup(&t);
    uint8_t buf[32768];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = tf_byte(t.peer[0].seed, i);
    assert_int_equal(send(t.peer[0].fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    if (fin_first)
        assert_int_equal(shutdown(t.peer[0].fd, SHUT_WR), 0);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(t.peer[0].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(t.peer[0].fd);
    t.peer[0].fd = -1; /* its thread has nothing to do */
    t.peer[1].end = PEER_STAY;
    bh_tunnel_config c = config(1);
    run_to_status(&t, &c, UV_ECONNRESET);
    assert_int_equal(t.peer[1].recv_end, ECONNRESET);
    assert_int_equal(t.peer[1].mismatch_at, SIZE_MAX);
    assert_int_equal(t.final.reset[0], 1);
    assert_int_equal(t.final.eof[0], 0);
}

/* Peers that neither close nor reset: only the tunnel ends the test. */
static void setup_staying_peers(tf *t)
{
    tf_setup(t);
    t->peer[0].end = t->peer[1].end = PEER_STAY;
}

/* Both peers' reads ended in a reset. */
static void assert_both_peers_reset(const tf *t)
{
    assert_int_equal(t->peer[0].recv_end, ECONNRESET);
    assert_int_equal(t->peer[1].recv_end, ECONNRESET);
}

static void idle_tunnel_times_out_and_resets_both_sides(void **state)
{
    (void)state;
    tf t;
    setup_staying_peers(&t);
    t.peer[0].send_len = 1000;
    bh_tunnel_config c = config(1);
    c.idle_timeout_ms = 50; /* ends the test whenever the bytes came */
    run_to_status(&t, &c, UV_ETIMEDOUT);
    assert_both_peers_reset(&t);
    assert_true(t.final.bytes[0] <= 1000);
    assert_int_equal(t.final.reset[0], 1);
    assert_int_equal(t.final.reset[1], 1);
}

static void abort_resets_both_sides_and_reports_canceled_once(void **state)
{
    (void)state;
    tf t;
    setup_staying_peers(&t);
    bh_tunnel_config c = config(1);
    start(&t, &c, NULL, NULL);
    bh_tunnel_abort(&t.tunnel);
    bh_tunnel_abort(&t.tunnel);
    assert_int_equal(t.done_calls, 0); /* never inside the call */
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.done_calls, 1);
    assert_int_equal(t.status, BH_ECANCELED);
    assert_both_peers_reset(&t);
}

/* With every new fd refused (RLIMIT_NOFILE at the current highest fd), no
 * pipe and no dup can be made: the tunnel stays on the buffer path. */
static void splice_unavailable_for_lack_of_fds_falls_back_to_buffers(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    size_t len = mib(8);
    t.peer[0].send_len = t.peer[1].send_len = len;
    t.peer[0].max_chunk = t.peer[1].max_chunk = 65536;
    bh_tunnel_config c = config(1);
    start(&t, &c, NULL, NULL);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int top = dup(0);
    assert_true(top >= 0);
    close(top);
    low = old;
    low.rlim_cur = (rlim_t)top; /* every fd below top is in use or reused */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = tf_run(&t, RUN_MS);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(t.status, 0);
    assert_peer_got_all(&t.peer[0], len);
    assert_peer_got_all(&t.peer[1], len);
    assert_int_equal(t.final.spliced[0] + t.final.spliced[1], 0);
}

/* Every allocation of a run fails in turn, on the buffer path and with
 * splice on (big reads take the splice path, whose state is allocated then;
 * without it the direction stays on buffers): the tunnel either relays
 * everything or ends with BH_ENOMEM and resets both sides, never ending a
 * stream cleanly short, and frees everything. */
static void allocation_failures(int splice)
{
    size_t len = splice ? 400000 : 50000, chunk = splice ? 65536 : 3000;
    int spliced_some = 0;
    for (size_t n = 1; n < 64; n++) {
        tf t;
        tf_setup(&t);
        t.peer[0].send_len = t.peer[1].send_len = len;
        t.peer[0].max_chunk = t.peer[1].max_chunk = chunk;
        bh_tunnel_config c = config(splice);
        c.read_reserve = 2048;
        c.max_bytes = 4096;
        test_alloc_install(0);
        start(&t, &c, NULL, NULL);
        test_alloc_fail_after(n - 1);
        assert_int_equal(tf_run(&t, RUN_MS), 0);
        bh_thread_cache_trim(); /* blocks the readers gave back */
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        assert_int_equal(st.live, 0);
        test_alloc_uninstall();
        assert_int_equal(t.done_calls, 1);
        spliced_some |= t.final.spliced[0] + t.final.spliced[1] > 0;
        if (t.status == 0) {
            assert_peer_got_all(&t.peer[0], len);
            assert_peer_got_all(&t.peer[1], len);
        } else {
            assert_int_equal(t.status, BH_ENOMEM);
            for (int s = 0; s < 2; s++) {
                assert_int_equal(t.peer[s].mismatch_at, SIZE_MAX);
                if (t.peer[s].recv_end == 0)
                    assert_int_equal(t.peer[s].received, len);
            }
        }
        if (st.failed == 0)
            break; /* past the last allocation of a run */
    }
    assert_int_equal(spliced_some, splice);
}

static void allocation_failures_end_with_enomem_and_reset_never_short(void **state)
{
    (void)state;
    allocation_failures(0);
}

static void allocation_failures_while_splicing_fall_back_or_end_with_enomem(void **state)
{
    (void)state;
    allocation_failures(1);
}

/* The idle timeout's timer is allocated before anything starts: when that
 * fails, start returns BH_ENOMEM and the streams are as they were (a second
 * start relays normally). */
static void idle_timer_allocation_failure_changes_nothing(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    t.peer[0].send_len = t.peer[1].send_len = 10000;
    uv_stream_t *a = (uv_stream_t *)&t.side[0], *b = (uv_stream_t *)&t.side[1];
    a->data = b->data = &t;
    bh_tunnel_config c = config(1);
    c.idle_timeout_ms = 60000;
    test_alloc_fail_all(1);
    assert_int_equal(bh_tunnel_start(&t.tunnel, &t.loop, a, b, NULL, NULL, &c, tf_done, &t),
                     BH_ENOMEM);
    test_alloc_fail_all(0);
    assert_ptr_equal(a->data, &t);
    assert_ptr_equal(b->data, &t);
    assert_true(uv_is_readable(a) && uv_is_writable(b));
    run_to_status(&t, &c, 0);
    assert_peer_got_all(&t.peer[0], 10000);
    assert_peer_got_all(&t.peer[1], 10000);
}

/* The first allocations of a start with tails (the queues' rings) fail in
 * turn: start still succeeds, the tunnel ends with BH_ENOMEM through
 * done_cb (or absorbs the failure), and nothing of the tails is left. */
static void allocation_failure_while_queueing_the_tails_releases_them(void **state)
{
    (void)state;
    static const char ta[] = "tail of a", tb[] = "tail of b";
    for (size_t n = 1; n <= 6; n++) {
        tf t;
        tf_setup(&t);
        t.peer[0].end = t.peer[1].end = PEER_STAY;
        test_alloc_install(0);
        bh_buf a_tail, b_tail;
        bh_buf_init(&a_tail, 64);
        bh_buf_init(&b_tail, 64);
        assert_int_equal(bh_buf_append(&a_tail, ta, sizeof ta - 1), 0);
        assert_int_equal(bh_buf_append(&b_tail, tb, sizeof tb - 1), 0);
        test_alloc_fail_after(n - 1);
        bh_tunnel_config c = config(1);
        start(&t, &c, &a_tail, &b_tail);
        bh_buf_free(&a_tail);
        bh_buf_free(&b_tail);
        test_alloc_fail_all(0);
        if (t.done_calls == 0)
            bh_tunnel_abort(&t.tunnel); /* the peers stay: end it here */
        assert_int_equal(tf_run(&t, RUN_MS), 0);
        assert_int_equal(t.done_calls, 1);
        assert_true(t.status == BH_ENOMEM || t.status == BH_ECANCELED);
        bh_thread_cache_trim(); /* arrays the drained queues gave back */
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        assert_int_equal(st.live, 0);
        test_alloc_uninstall();
    }
}

static void stats_are_readable_while_running(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    t.peer[0].send_len = 100000;
    t.peer[0].end = PEER_STAY;
    t.peer[1].end = PEER_STAY;
    bh_tunnel_config c = config(0);
    start(&t, &c, NULL, NULL);
    struct bh_tunnel_stats st;
    for (int i = 0; i < 100000; i++) {
        uv_run(&t.loop, UV_RUN_ONCE);
        bh_tunnel_stats(&t.tunnel, &st);
        if (st.bytes[0] == 100000)
            break;
    }
    assert_int_equal(st.bytes[0], 100000);
    assert_int_equal(st.bytes[1], 0);
    assert_int_equal(st.eof[0], 0);
    bh_tunnel_abort(&t.tunnel);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.done_calls, 1);
}

static void start_rejects_bad_arguments_and_changes_nothing(void **state)
{
    (void)state;
    tf t;
    tf_setup(&t);
    uv_stream_t *a = (uv_stream_t *)&t.side[0], *b = (uv_stream_t *)&t.side[1];
    a->data = &t;
    assert_int_equal(bh_tunnel_start(NULL, &t.loop, a, b, NULL, NULL, NULL, tf_done, &t),
                     BH_EINVAL);
    assert_int_equal(bh_tunnel_start(&t.tunnel, &t.loop, a, a, NULL, NULL, NULL, tf_done, &t),
                     BH_EINVAL);
    assert_int_equal(bh_tunnel_start(&t.tunnel, &t.loop, a, b, NULL, NULL, NULL, NULL, &t),
                     BH_EINVAL);
    assert_ptr_equal(a->data, &t);
    t.peer[0].end = t.peer[1].end = PEER_STAY;
    start(&t, NULL, NULL, NULL);
    bh_tunnel_abort(&t.tunnel);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
}

/* Parameters of the parameterised tests: the side that half-closes first,
 * and whether a FIN precedes the queued reset. */
static const int A_SIDE = 0, B_SIDE = 1, RST_ONLY = 0, FIN_FIRST = 1;

TEST_MAIN(test_alloc_checked(tails_are_written_first_byte_exact),
          test_alloc_checked(tail_longer_than_the_budget_goes_out_in_pieces),
          test_alloc_checked(relays_byte_exact_with_random_fragmentation_buffers_only),
          test_alloc_checked(relays_byte_exact_with_random_fragmentation_splice_on),
          test_alloc_checked(splice_on_and_off_deliver_identical_bytes),
          test_alloc_checked(sixty_four_mib_each_way_through_tiny_budgets_stays_bounded),
          test_alloc_checked_case(half_close_by_a_first_passes_eof_and_keeps_b_to_a_open,
                                  half_close, &A_SIDE),
          test_alloc_checked_case(half_close_by_b_first_passes_eof_and_keeps_a_to_b_open,
                                  half_close, &B_SIDE),
          test_alloc_checked(reset_by_a_right_after_its_data_resets_b),
          test_alloc_checked(reset_by_b_right_after_its_data_resets_a),
          test_alloc_checked(reset_mid_stream_while_splicing_resets_the_other_side),
          test_alloc_checked_case(reset_queued_right_behind_data_reaches_b_as_a_reset,
                                  reset_queued_behind_data, &RST_ONLY),
          test_alloc_checked_case(reset_queued_behind_data_and_fin_reaches_b_as_a_reset,
                                  reset_queued_behind_data, &FIN_FIRST),
          test_alloc_checked(idle_tunnel_times_out_and_resets_both_sides),
          test_alloc_checked(abort_resets_both_sides_and_reports_canceled_once),
          test_alloc_checked(splice_unavailable_for_lack_of_fds_falls_back_to_buffers),
          test_alloc_checked(allocation_failures_end_with_enomem_and_reset_never_short),
          test_alloc_checked(allocation_failures_while_splicing_fall_back_or_end_with_enomem),
          test_alloc_checked(idle_timer_allocation_failure_changes_nothing),
          test_alloc_checked(allocation_failure_while_queueing_the_tails_releases_them),
          test_alloc_checked(stats_are_readable_while_running),
          test_alloc_checked(start_rejects_bad_arguments_and_changes_nothing))
