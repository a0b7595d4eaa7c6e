/* fuzz_writeq.c - libFuzzer target for bh_writeq over a real socketpair.
 *
 * Input: a 3-byte header (max_items 1..16 and, in bit 7, whether every write
 * goes through the cross-thread bh_writeq_submit_mt() from the loop thread;
 * max_bytes 1..4096), then operations: try_write (ticket) and try_write_ff of a
 * fuzzer-sized slice, drain some bytes from the peer fd, run the loop once,
 * set the drain callback, shutdown, close the queue (and its stream), close
 * the peer fd. The top bit of an opcode makes every allocation through the
 * library's hook fail during that operation. Ticket callbacks may write
 * again or close the queue from inside, as the header allows.
 *
 * Invariants checked:
 * - a refused slice is untouched and still owned by the caller (refcount 1);
 *   an accepted one is zeroed;
 * - the return code is exactly what the budgets predict from the queue's own
 *   counters (BH_ETOOLONG above max_bytes, BH_EFULL when an item or byte
 *   budget would be exceeded, BH_ECLOSED after close/shutdown/failure,
 *   BH_ENOMEM only when an allocation failed, a libuv error only once the
 *   peer is gone), and the counters never exceed the budgets;
 * - accepted bytes == written bytes + queued bytes while the queue is
 *   healthy; the peer receives a prefix of the accepted bytes, in order;
 * - each ticket completes exactly once, never inside an API call; tickets
 *   that succeed complete in acceptance order, after all of their bytes
 *   were written; failures only after close or once the peer is gone;
 * - after a clean shutdown the peer reads exactly the accepted bytes, then
 *   EOF; after everything is closed nothing allocated is left.
 * Return codes, refused slices and callbacks are checked at every call; the
 * counters in every state the operations leave the queue in (once each:
 * reads and drain-callback settings do not move them); the peer's bytes as
 * they are read. Slices are cut from a static stream table rather than
 * generated, and nothing is copied for the comparison (speed, issue #12).
 *
 * The loop and the socketpair are created once and reused by the next input
 * whenever this one left them usable (no shutdown, no peer close, no write
 * error): the queue is closed, its write in flight runs to completion, the
 * peer is drained, and the next input must find no byte, no handle but the
 * pipe and no allocation left behind (a state leak between inputs is a
 * finding). Allocations go through the tests' failing allocator
 * (tests/support). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "fuzz_support.h"
#include "test_alloc.h"

#define MAX_TICKETS 256
#define PUMP_ROUNDS 20000
#define READ_CHUNK 16384
/* The stream's bytes: byte i of what the queue accepts is
 * PATTERN[i % PATTERN_PERIOD]; the table repeats its head so any read chunk
 * or slice starting inside the period is contiguous. The period (prime, ~1
 * MiB) exceeds what an input of run-fuzz.sh's -max_len can get accepted (at
 * most 4 KiB per 2 input bytes), so a dropped, repeated or reordered run of
 * bytes shows up as a mismatch. */
#define PATTERN_PERIOD 1048573u
static uint8_t PATTERN[PATTERN_PERIOD + READ_CHUNK];

static size_t alloc_failed(void)
{
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    return st.failed;
}

/* The loop and the socketpair, kept across inputs. */
static struct {
    int ready;        /* loop initialised */
    int open;         /* pipe and peer_fd usable by the next input */
    uv_loop_t loop;
    uv_pipe_t pipe;
    int peer_fd;
} IO;

/* ---- model ---------------------------------------------------------------- */

typedef struct ticket {
    size_t end;    /* offset in the accepted stream just past this slice */
    int completed; /* times the callback ran */
    int status;
    uint8_t action; /* from inside the callback: 1 write ff, 2 close */
} ticket;

static struct {
    bh_writeq q;
    bh_writeq_config cfg;

    size_t accepted_len; /* bytes accepted: the stream's first accepted_len bytes */
    size_t received_len; /* bytes the peer read, checked against the stream */

    ticket tickets[MAX_TICKETS];
    size_t nticket;
    size_t last_ok_end; /* end offset of the last ticket completed with 0 */

    int fail_all;     /* every allocation fails during this operation */
    int mt;           /* every write goes through bh_writeq_submit_mt */
    int mt_gone;      /* the loop ran after close: submit_mt is off limits */
    int in_api;       /* inside a bh_writeq_* call that must not call back */
    int in_cb;        /* inside a ticket callback */
    int unchecked;    /* the counters may have moved since the last check */
    int closed;       /* bh_writeq_close called */
    int shut;         /* bh_writeq_shutdown accepted */
    int failed;       /* a libuv error was observed */
    int peer_closed;
    int pipe_closing;
    int shutdown_done;
    int shutdown_status;
    int peer_eof;
    size_t drain_calls;
} W;

static void set_fail_all(int on)
{
    W.fail_all = on;
    test_alloc_fail_all(on);
}

/* 1 when the queue may have failed without the driver seeing it yet: the
 * peer is gone, or (cross-thread mode) the loop could not take inbox items
 * into the ring because an allocation failed. */
static int may_have_failed(void)
{
    return W.failed || W.peer_closed || (W.mt && alloc_failed() > 0);
}

static const uint8_t *stream_at(size_t off)
{
    return PATTERN + off % PATTERN_PERIOD;
}

FUZZ_NO_COVERAGE static void pattern_init(void)
{
    for (uint32_t i = 0; i < sizeof PATTERN; i++)
        PATTERN[i] = (uint8_t)(i % PATTERN_PERIOD * 2654435761u >> 24);
}

/* The queue's counters against the budgets and the accepted stream, in
 * every state the driver leaves the queue in between operations: only
 * offers, loop turns, shutdown and close move the counters, so each state
 * is checked once, by the next offer's own snapshot or before the next
 * loop turn, shutdown, close or peer close (check_before), and at the end
 * of the input. The peer's bytes are checked as they arrive
 * (check_received). */
FUZZ_NO_COVERAGE static void check_counters(const struct bh_writeq_stats *st)
{
    CHECK(st->queued_items <= W.cfg.max_items);
    CHECK(st->queued_bytes <= W.cfg.max_bytes);
    if (!W.closed && !may_have_failed())
        CHECK(st->written_bytes + st->queued_bytes == W.accepted_len);
}

FUZZ_NO_COVERAGE static void check_stats(void)
{
    struct bh_writeq_stats st;
    bh_writeq_stats(&W.q, &st);
    check_counters(&st);
    W.unchecked = 0;
}

/* Before operation op: checks the state the previous ones left when op may
 * move the counters or weaken the check (peer close). */
FUZZ_NO_COVERAGE static void check_before(uint8_t op)
{
    unsigned kind = (op & 0x7fu) % 10;
    if (W.unchecked && kind >= 5 && kind != 7)
        check_stats();
}

/* n bytes the peer just read: the next bytes of the accepted stream.
 * written_bytes lags the wire by the write in flight (libuv reports it in
 * the write callback), so the peer may already hold more than that. */
FUZZ_NO_COVERAGE static void check_received(const uint8_t *p, size_t n)
{
    CHECK(n <= W.accepted_len - W.received_len);
    CHECK(memcmp(p, stream_at(W.received_len), n) == 0);
    W.received_len += n;
}

static int is_libuv_error(int rc)
{
    return rc < 0 && rc > -4000; /* bh codes are below -4000 */
}

static void offer(size_t len, int with_ticket, uint8_t action);

static void on_ticket(bh_writeq *q, int status, void *ctx)
{
    ticket *t = ctx;
    CHECK(q == &W.q);
    CHECK(!W.in_api);
    CHECK(t->completed == 0);
    t->completed = 1;
    t->status = status;
    if (status == 0) {
        struct bh_writeq_stats st;
        bh_writeq_stats(q, &st);
        CHECK(t->end >= W.last_ok_end);
        W.last_ok_end = t->end;
        /* Completed means every byte up to this slice's end was written. */
        CHECK(st.written_bytes >= t->end || W.peer_closed || W.closed);
    } else if (status == BH_ECANCELED) {
        CHECK(W.closed);
    } else if (status == BH_ENOMEM) {
        CHECK(W.mt && alloc_failed() > 0); /* inbox item could not enter the ring */
        W.failed = 1;
    } else {
        CHECK(is_libuv_error(status));
        CHECK(W.peer_closed);
        W.failed = 1;
    }
    if (t->action == 1) {
        W.in_cb++;
        offer(1 + t->end % 7, 0, 0);
        W.in_cb--;
    } else if (t->action == 2 && !W.closed) {
        W.closed = 1;
        bh_writeq_close(q);
    }
}

static void on_drain(bh_writeq *q, void *ctx)
{
    CHECK(q == &W.q && ctx == &W);
    CHECK(!W.in_api);
    CHECK(!W.closed); /* never after close */
    W.drain_calls++;
}

static void on_shutdown(bh_writeq *q, int status, void *ctx)
{
    CHECK(q == &W.q && ctx == &W);
    CHECK(!W.in_api);
    CHECK(!W.shutdown_done);
    W.shutdown_done = 1;
    W.shutdown_status = status;
    if (status == BH_ECANCELED)
        CHECK(W.closed);
    else if (status != 0)
        CHECK(may_have_failed() && (is_libuv_error(status) || (W.mt && status == BH_ENOMEM)));
}

/* Offers one slice of len bytes, the stream's next ones, with or without a
 * ticket, and checks the result against the budgets. */
static void offer(size_t len, int with_ticket, uint8_t action)
{
    CHECK(len <= 4096);
    if (W.mt && W.mt_gone)
        return; /* the contract forbids submitting once close callbacks ran */
    int fail = W.fail_all;
    set_fail_all(0);
    bh_bytes data;
    CHECK(bh_bytes_copy(&data, stream_at(W.accepted_len), len) == BH_OK);
    set_fail_all(fail);
    bh_bytes orig = data;

    ticket *t = NULL;
    if (with_ticket && W.nticket < MAX_TICKETS) {
        t = &W.tickets[W.nticket];
        memset(t, 0, sizeof *t);
        t->end = W.accepted_len + len;
        t->action = action;
    }
    struct bh_writeq_stats st;
    bh_writeq_stats(&W.q, &st);
    if (!W.in_cb) {
        check_counters(&st);
        W.unchecked = 1; /* checked before; the call below may move them */
    }
    size_t failed = alloc_failed();
    W.in_api++;
    int rc;
    if (W.mt)
        rc = bh_writeq_submit_mt(&W.q, &data, t ? on_ticket : NULL, t);
    else if (t)
        rc = bh_writeq_try_write(&W.q, &data, on_ticket, t);
    else
        rc = bh_writeq_try_write_ff(&W.q, &data);
    W.in_api--;

    if (rc == BH_OK) {
        CHECK(data.ptr == NULL && data.len == 0 && bh_bytes_refcount(&data) == 0);
        CHECK(!W.closed && !W.shut);
        CHECK(may_have_failed() || (st.queued_items < W.cfg.max_items &&
                                len <= W.cfg.max_bytes - st.queued_bytes));
        W.accepted_len += len;
        if (t)
            W.nticket++;
        return;
    }
    /* Refused: the caller still owns exactly what it offered. */
    CHECK(memcmp(&data, &orig, sizeof data) == 0); /* the caller keeps it as it was */
    if (len)
        CHECK(bh_bytes_refcount(&data) == 1);
    bh_bytes_release(&data);
    if (W.closed || W.shut || W.failed) {
        CHECK(rc == BH_ECLOSED);
    } else if (rc == BH_ECLOSED) {
        CHECK(may_have_failed()); /* only a failure we have not observed yet */
        W.failed = 1;
    } else if (len > W.cfg.max_bytes) {
        CHECK(rc == BH_ETOOLONG);
    } else if (st.queued_items >= W.cfg.max_items || len > W.cfg.max_bytes - st.queued_bytes) {
        CHECK(rc == BH_EFULL);
    } else if (rc == BH_ENOMEM) {
        CHECK(alloc_failed() > failed);
    } else {
        CHECK(is_libuv_error(rc) && W.peer_closed);
        W.failed = 1;
    }
}

static void drain_peer(size_t max)
{
    static uint8_t tmp[READ_CHUNK];
    if (W.peer_closed || W.peer_eof)
        return;
    while (max > 0) {
        size_t want = max < sizeof tmp ? max : sizeof tmp;
        ssize_t n = read(IO.peer_fd, tmp, want);
        if (n < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            return;
        }
        if (n == 0) {
            W.peer_eof = 1;
            return;
        }
        check_received(tmp, (size_t)n);
        max -= (size_t)n;
    }
}

static void on_pipe_closed(uv_handle_t *h) { (void)h; }

static void close_queue(void)
{
    if (!W.closed) {
        W.closed = 1;
        bh_writeq_close(&W.q);
        /* Producers racing close get BH_ECLOSED until the loop runs the
         * close callbacks; the slice stays theirs. */
        if (W.mt)
            offer(3, 1, 0);
    }
    if (!W.pipe_closing) {
        W.pipe_closing = 1;
        uv_close((uv_handle_t *)&IO.pipe, on_pipe_closed);
    }
}

static void run_once(void)
{
    uv_run(&IO.loop, UV_RUN_NOWAIT);
    W.mt_gone |= W.closed; /* also when a callback closed the queue */
}

static int all_tickets_done(void)
{
    for (size_t i = 0; i < W.nticket; i++)
        if (!W.tickets[i].completed)
            return 0;
    return 1;
}

/* ---- driver --------------------------------------------------------------- */

/* A slice length from its input byte: 0..255, or with bit 6 of the opcode
 * multiples of 17 up to 4080 and, for 255, 4096 (the largest slice: a whole
 * byte budget, and the size from which an idle queue writes a
 * fire-and-forget slice at once). */
static size_t slice_len(uint8_t op, uint8_t v)
{
    if (!(op & 0x40))
        return v;
    return v == 255 ? 4096 : (size_t)v * 17 % 4097;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    ++*(int *)arg;
}

static int loop_handles(void)
{
    int n = 0;
    uv_walk(&IO.loop, count_handle, &n);
    return n;
}

/* A fresh socketpair (small kernel buffers) as the pipe and the peer fd. */
static void io_open(void)
{
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    IO.peer_fd = fds[1];
    CHECK(uv_pipe_init(&IO.loop, &IO.pipe, 0) == 0);
    CHECK(uv_pipe_open(&IO.pipe, fds[0]) == 0);
    CHECK(fcntl(IO.peer_fd, F_SETFL, fcntl(IO.peer_fd, F_GETFL) | O_NONBLOCK) == 0);
    IO.open = 1;
}

/* Runs the loop and drains the peer until nothing is pending: the write in
 * flight completed (or was canceled) and every close callback ran. */
static void pump_until_idle(void)
{
    for (int round = 0; round < PUMP_ROUNDS && uv_loop_alive(&IO.loop); round++) {
        uv_run(&IO.loop, UV_RUN_NOWAIT);
        drain_peer(SIZE_MAX);
    }
    CHECK(!uv_loop_alive(&IO.loop));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!IO.ready) {
        signal(SIGPIPE, SIG_IGN);
        pattern_init();
        CHECK(uv_loop_init(&IO.loop) == 0);
        IO.ready = 1;
    }
    fuzz_input in = {data, size};
    memset(&W, 0, sizeof W);
    fuzz_alloc_begin();

    uint8_t h0 = fuzz_u8(&in);
    W.mt = (h0 & 0x80) != 0;
    W.cfg.max_items = 1 + h0 % 16;
    W.cfg.max_bytes = 1 + (((size_t)fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 4096);

    if (IO.open) {
        /* Left by the previous input: nothing may arrive or be pending. */
        uint8_t b;
        CHECK(read(IO.peer_fd, &b, 1) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        CHECK(loop_handles() == 1 && !uv_loop_alive(&IO.loop));
    } else {
        CHECK(loop_handles() == 0);
        io_open();
    }
    CHECK(bh_writeq_init(&W.q, &IO.loop, (uv_stream_t *)&IO.pipe, &W.cfg) == BH_OK);
    if (W.mt)
        CHECK(bh_writeq_enable_mt(&W.q) == BH_OK);

    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in);
        check_before(op);
        set_fail_all((op & 0x80) != 0);
        switch ((op & 0x7f) % 10) {
        case 0:
        case 1: {
            size_t len = slice_len(op, fuzz_u8(&in));
            offer(len, 1, fuzz_u8(&in) % 8);
            break;
        }
        case 2:
        case 3:
            offer(slice_len(op, fuzz_u8(&in)), 0, 0);
            break;
        case 4:
            drain_peer((size_t)fuzz_u8(&in) * 64 + 1);
            break;
        case 5:
        case 6:
            run_once();
            W.unchecked = 1;
            break;
        case 7:
            if (!W.closed)
                bh_writeq_set_drain_cb(&W.q, (size_t)fuzz_u8(&in) * 16, on_drain, &W);
            break;
        case 8:
            if (fuzz_u8(&in) & 1) {
                close_queue();
            } else if (!W.closed) {
                W.in_api++;
                int rc = bh_writeq_shutdown(&W.q, on_shutdown, &W);
                W.in_api--;
                if (W.shut || W.failed)
                    CHECK(rc == BH_ECLOSED);
                else if (rc == BH_ECLOSED)
                    CHECK(may_have_failed());
                else if (rc != 0)
                    CHECK(is_libuv_error(rc) && W.peer_closed);
                if (rc == 0)
                    W.shut = 1;
            }
            W.unchecked = 1;
            break;
        default:
            if (fuzz_u8(&in) == 0xAA && !W.peer_closed) {
                close(IO.peer_fd);
                W.peer_closed = 1;
            }
            break;
        }
        set_fail_all(0);
    }
    check_stats();

    /* Flush: everything accepted reaches the peer while the queue is healthy. */
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        int flushed = W.received_len == W.accepted_len && all_tickets_done() &&
                      (!W.shut || W.shutdown_done);
        if (flushed || W.closed || may_have_failed())
            break;
        run_once();
        drain_peer(SIZE_MAX);
        check_stats();
    }
    if (!W.closed && !may_have_failed()) {
        CHECK(W.received_len == W.accepted_len);
        CHECK(all_tickets_done());
        for (size_t i = 0; i < W.nticket; i++)
            CHECK(W.tickets[i].status == 0);
        if (W.shut) {
            CHECK(W.shutdown_done && W.shutdown_status == 0);
            /* After a clean shutdown the peer sees EOF right after the data. */
            for (int round = 0; round < PUMP_ROUNDS && !W.peer_eof; round++)
                drain_peer(SIZE_MAX);
            CHECK(W.peer_eof && W.received_len == W.accepted_len);
        }
    }

    /* Reuse the socketpair unless this input made it unusable. */
    int reuse = !W.shut && !W.peer_closed && !W.pipe_closing && !W.failed;
    if (reuse && !W.closed) {
        W.closed = 1;
        bh_writeq_close(&W.q);
        if (W.mt)
            offer(3, 1, 0);
    } else if (!reuse) {
        close_queue();
    }
    W.mt_gone = 1;
    pump_until_idle();
    CHECK(all_tickets_done());
    if (W.shut)
        CHECK(W.shutdown_done);
    drain_peer(SIZE_MAX);
    check_stats();
    if (!reuse) {
        if (!W.peer_closed)
            close(IO.peer_fd);
        IO.open = 0;
    }
    bh_thread_cache_trim(); /* the arrays the drained queue gave back */
    fuzz_alloc_end();
    return 0;
}
