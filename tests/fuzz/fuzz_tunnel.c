/* fuzz_tunnel.c - libFuzzer target for bh_tunnel's relay state machine over
 * real sockets: AF_UNIX socketpairs for most inputs, loopback TCP (so the
 * splice path takes part) when the header selects it.
 *
 * Input: a 4-byte header (read_reserve 1..4081, max_bytes 64..8224, splice on
 * or off in bit 0 of byte 2 and the transport in its bits 1-3: 0 both sides
 * loopback TCP, 1 side 0 TCP and side 1 AF_UNIX, else both AF_UNIX; tail
 * lengths 0..63 for both sides), then operations, each an opcode byte and an
 * argument byte, driven from one thread against the two outer ends
 * (nonblocking sockets) and the loop: a peer sends up to N bytes of its
 * stream, receives up to N bytes, half-closes, resets (SO_LINGER 0 and
 * close), the loop runs once, the tunnel is aborted, or its stats are read.
 * The top bit of an opcode makes every allocation through the library's hook
 * fail during that operation (and the loop run after it). At the end both
 * peers half-close (if still open) and drain until their input ends and the
 * tunnel has reported.
 *
 * Cost (issue #12: 10 M executions within 30 min on one core): the loop and
 * the TCP listener are created once and shared by every input; AF_UNIX pairs
 * (the tunnel's end with the smallest send buffer, so backpressure needs few
 * bytes) cost a fraction of a TCP connect + accept; each peer's stream is at
 * most STREAM_READS reads' worth (STREAM_READS x (read_reserve + 3) bytes),
 * at most STREAM_FILLS queues' worth (STREAM_FILLS x max_bytes: the tunnel
 * moves about max_bytes per loop round, so a 4 KiB read into a 64-byte
 * queue takes 64 rounds) and at most STREAM_MAX bytes, since the tunnel
 * pays a loop round and two system calls per read: 1-byte reads of a 4 KiB
 * send cost 20 ms. Both streams are computed once; sends go out of them and
 * received bytes are compared against them with memcmp. The reproducers and
 * seeds saved before the transport bits have bits 1-3 of byte 2 clear: they
 * replay over TCP, as they were found (a send beyond the budget is cut
 * short).
 *
 * Invariants checked:
 * - each peer receives a prefix of (the other side's tail, then the other
 *   peer's stream), byte-exact and in order;
 * - a clean EOF at a peer means it received everything the other peer sent
 *   (and the tail): a stream cut short never ends cleanly (unless the peer's
 *   own send or shutdown already reported the reset: a socket reports its
 *   error once). An AF_UNIX socket cannot be reset (closing it is its clean
 *   end): there a short clean EOF must come with a failed tunnel that
 *   reports the direction into that peer as cut short;
 * - done_cb runs exactly once, never inside an API call; status 0 means
 *   every byte sent was relayed and each peer still open got all of it and
 *   a clean EOF; the counters never exceed what was sent;
 * - once done, the tunnel has closed all it opened: the shared loop has no
 *   handle (closing or not) and no request left, every fd number the input
 *   could have used is closed again, and nothing allocated through the hook
 *   is left (a state leak between inputs is a finding). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bytes_handoff.h>
#include <bytes_handoff/block_cache.h>
#include <bytes_handoff/uv.h>

#include "fuzz_support.h"

#define DRAIN_ROUNDS 400000 /* loop runs to wind down; ends as soon as done */
#define STREAM_READS 8      /* a peer's stream: at most this many full reads */
#define STREAM_MAX 16384    /* and at most this many bytes */
#define STREAM_FILLS 8      /* and at most this many max_bytes queue fills */
#define UNIX_SNDBUF 1       /* the tunnel end of an AF_UNIX pair: the least */
/* The most fds an input holds at once: 4 sockets, and a splicing tunnel's
 * pipe per direction and dup per socket. */
#define INPUT_FDS 10

/* ---- peers ------------------------------------------------------------------ */

/* Peer s's stream (computed once): byte i is (s + 1) * 31 + i * 7 + (i >> 8) * 13. */
static uint8_t g_stream[2][STREAM_MAX];

typedef struct peer {
    int fd;              /* -1 once reset */
    const uint8_t *stream; /* its stream: g_stream[s] */
    size_t sent;         /* bytes of this peer's stream the kernel took */
    size_t budget;       /* most bytes its stream may have */
    int shut, reset;
    const uint8_t *prefix; /* the other side's tail, received first */
    size_t prefix_len;
    size_t received;
    int ended, end_err;  /* input ended: 0 = EOF, else errno */
    int saw_reset;       /* a send or shutdown failed: the RST was reported
                            there (the socket reports its error only once) */
    int tcp;             /* over loopback TCP, else AF_UNIX */
    int short_eof;       /* AF_UNIX: a clean EOF before the whole stream */
} peer;

FUZZ_NO_COVERAGE static void fill_streams(void)
{
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < STREAM_MAX; i++)
            g_stream[s][i] = (uint8_t)((s + 1) * 31u + i * 7u + (i >> 8) * 13u);
}

static void peer_send(peer *p, size_t n)
{
    if (p->fd < 0 || p->shut)
        return;
    if (n > 4096)
        n = 4096;
    if (n > p->budget - p->sent)
        n = p->budget - p->sent;
    if (n == 0)
        return;
    ssize_t w = send(p->fd, p->stream + p->sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0)
        p->sent += (size_t)w;
    else if (w < 0 && errno != EAGAIN && errno != EINTR)
        p->saw_reset = 1;
}

/* The r bytes p just received: the next ones of (tail, other's stream). */
FUZZ_NO_COVERAGE static void check_received(const peer *p, const peer *other, const uint8_t *buf,
                                            size_t r)
{
    CHECK(p->received + r <= p->prefix_len + other->sent);
    size_t at = p->received, head = 0;
    if (at < p->prefix_len) {
        head = p->prefix_len - at < r ? p->prefix_len - at : r;
        CHECK(memcmp(buf, p->prefix + at, head) == 0);
        at += head;
    }
    if (head < r)
        CHECK(memcmp(buf + head, other->stream + (at - p->prefix_len), r - head) == 0);
}

/* p's input ended: a clean EOF (r == 0) means everything arrived. An
 * AF_UNIX socket cannot be reset: closing one ends its stream cleanly, and a
 * tunnel cut short just closes it, which check_outcome() verifies once the
 * tunnel has reported. */
FUZZ_NO_COVERAGE static void check_end(peer *p, const peer *other, ssize_t r)
{
    if (r != 0 || p->saw_reset)
        return;
    int ended = other->shut || (other->reset && !other->tcp);
    int whole = p->received == p->prefix_len + other->sent && ended;
    if (p->tcp)
        CHECK(whole);
    else
        p->short_eof = !whole;
}

/* other: the peer whose stream this one receives. */
static void peer_recv(peer *p, const peer *other, size_t n)
{
    static uint8_t buf[8192];
    if (p->fd < 0 || p->ended)
        return;
    if (n > sizeof buf)
        n = sizeof buf;
    ssize_t r = recv(p->fd, buf, n, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        p->ended = 1;
        p->end_err = r == 0 ? 0 : errno;
        check_end(p, other, r);
        return;
    }
    check_received(p, other, buf, (size_t)r);
    p->received += (size_t)r;
}

static void peer_shutdown(peer *p)
{
    if (p->fd < 0 || p->shut)
        return;
    if (shutdown(p->fd, SHUT_WR) != 0)
        p->saw_reset = 1;
    p->shut = 1;
}

static void peer_reset(peer *p)
{
    if (p->fd < 0)
        return;
    struct linger lg = {1, 0};
    if (p->tcp)
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(p->fd);
    p->fd = -1;
    p->reset = 1;
}

/* ---- fixture ----------------------------------------------------------------- */

/* Shared by every input: the loop and the TCP listener. */
static struct {
    int ready;
    int listener;
    struct sockaddr_in addr;
    uv_loop_t loop;
} IO;

static void io_init(void)
{
    socklen_t len = sizeof IO.addr;
    signal(SIGPIPE, SIG_IGN);
    fill_streams();
    IO.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(IO.listener >= 0);
    memset(&IO.addr, 0, sizeof IO.addr);
    IO.addr.sin_family = AF_INET;
    IO.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(IO.listener, (struct sockaddr *)&IO.addr, sizeof IO.addr) == 0);
    CHECK(listen(IO.listener, 16) == 0);
    CHECK(getsockname(IO.listener, (struct sockaddr *)&IO.addr, &len) == 0);
    CHECK(uv_loop_init(&IO.loop) == 0);
    /* The loop's first stream opens an fd it keeps (libuv's reserve for
     * EMFILE): open it now, so that inputs give back every fd they open. */
    uv_pipe_t first;
    CHECK(uv_pipe_init(&IO.loop, &first, 0) == 0);
    uv_close((uv_handle_t *)&first, NULL);
    CHECK(uv_run(&IO.loop, UV_RUN_DEFAULT) == 0);
    IO.ready = 1;
}

/* The n lowest free fd numbers: fds are allocated lowest first, so every fd
 * an input holding at most n at once opens has one of them (a splicing
 * tunnel opens fds of its own). Taken per input: libFuzzer's symbolizer
 * holds fds between inputs. */
FUZZ_NO_COVERAGE static void free_fds(int out[INPUT_FDS], int n)
{
    for (int i = 0; i < n; i++) {
        out[i] = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
        CHECK(out[i] >= 0);
    }
    for (int i = 0; i < n; i++)
        close(out[i]);
}

/* A connected loopback pair: *outer (nonblocking) and *inner.  libFuzzer's
 * -timeout alarm (SIGALRM, no SA_RESTART) can interrupt any blocking call, so
 * the connect is nonblocking and the accept retries on EINTR. The accept
 * returns once the handshake's last ACK arrived: *outer is established
 * then, so there is nothing to wait for. */
static void tcp_pair(int *outer, int *inner)
{
    *outer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(*outer >= 0);
    if (connect(*outer, (struct sockaddr *)&IO.addr, sizeof IO.addr) != 0 &&
        errno != EINPROGRESS && errno != EINTR) {
        fprintf(stderr, "fuzz_tunnel: connect: %s\n", strerror(errno));
        abort();
    }
    do
        *inner = accept(IO.listener, NULL, NULL);
    while (*inner < 0 && errno == EINTR);
    CHECK(*inner >= 0);
    int one = 1;
    setsockopt(*outer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* An AF_UNIX pair: *outer (nonblocking) and *inner, whose small send buffer
 * makes the tunnel's queue fill after a few KiB the peer does not read. */
static void unix_pair(int *outer, int *inner)
{
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
    int small = UNIX_SNDBUF;
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    *outer = fds[0];
    *inner = fds[1];
}

typedef struct fx {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } side[2];
    bh_tunnel t;
    peer peer[2];
    int done_calls, in_api, status;
    struct bh_tunnel_stats st;
} fx;

static void on_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    fx *f = ctx;
    (void)t;
    CHECK(!f->in_api);
    f->done_calls++;
    f->status = status;
    f->st = *st;
}

static void run_once(void) { uv_run(&IO.loop, UV_RUN_NOWAIT); }

/* Side s's inner end on the loop, over loopback TCP or AF_UNIX; returns its
 * fd. */
static int side_open(fx *f, int s, int tcp)
{
    int inner;
    f->peer[s].tcp = tcp;
    if (tcp) {
        tcp_pair(&f->peer[s].fd, &inner);
        CHECK(uv_tcp_init(&IO.loop, &f->side[s].tcp) == 0);
        CHECK(uv_tcp_open(&f->side[s].tcp, inner) == 0);
    } else {
        unix_pair(&f->peer[s].fd, &inner);
        CHECK(uv_pipe_init(&IO.loop, &f->side[s].pipe, 0) == 0);
        CHECK(uv_pipe_open(&f->side[s].pipe, inner) == 0);
    }
    return inner;
}

FUZZ_NO_COVERAGE static void check_stats(const fx *f, const size_t tail_len[2])
{
    struct bh_tunnel_stats st;
    bh_tunnel_stats(&f->t, &st);
    CHECK(st.bytes[0] <= tail_len[0] + f->peer[0].sent);
    CHECK(st.bytes[1] <= tail_len[1] + f->peer[1].sent);
    CHECK(st.spliced[0] <= st.bytes[0] && st.spliced[1] <= st.bytes[1]);
}

/* After the wind-down: the verdict agrees with what the peers saw. */
FUZZ_NO_COVERAGE static void check_outcome(const fx *f, const size_t tail_len[2], int aborted)
{
    CHECK(f->done_calls == 1);
    CHECK(aborted != 2);
    for (int s = 0; s < 2; s++) /* the direction into s was cut short */
        if (f->peer[s].short_eof)
            CHECK(f->status != 0 && f->st.reset[1 - s]);
    if (f->status == 0) /* a reset or abort came too late to matter */
        for (int s = 0; s < 2; s++) {
            CHECK(f->st.bytes[1 - s] == tail_len[1 - s] + f->peer[1 - s].sent);
            if (!f->peer[s].reset && !f->peer[s].saw_reset)
                CHECK(f->peer[s].ended && f->peer[s].end_err == 0 &&
                      f->peer[s].received == f->st.bytes[1 - s]);
        }
}

FUZZ_NO_COVERAGE static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    ++*(int *)arg;
}

/* Nothing of this input is left: no handle (closing or not) or request on
 * the loop, no pipe kept with bytes in it (the splice path pools only empty
 * ones), none of the fds it could have opened once the pool is emptied, no
 * allocation. */
FUZZ_NO_COVERAGE static void check_no_leak(const int fds[INPUT_FDS], int nfds)
{
    int handles = 0;
    uv_walk(&IO.loop, count_handle, &handles);
    CHECK(handles == 0 && !uv_loop_alive(&IO.loop));
    for (int i = 0; i < nfds; i++) {
        struct stat sb;
        int queued = 0;
        if (fstat(fds[i], &sb) == 0 && S_ISFIFO(sb.st_mode))
            CHECK(ioctl(fds[i], FIONREAD, &queued) == 0 && queued == 0);
    }
    bh_tunnel_pipes_trim(); /* the splice path's pooled pipes */
    for (int i = 0; i < nfds; i++)
        CHECK(fcntl(fds[i], F_GETFD) == -1 && errno == EBADF);
    bh_thread_cache_trim(); /* blocks the readers gave back to the thread's cache */
    fuzz_alloc_end();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static uint8_t tails[2][64];
    if (!IO.ready)
        io_init();
    fuzz_alloc_begin();

    static fx fixture;
    fx *f = &fixture;
    memset(f, 0, sizeof *f);
    bh_tunnel_config cfg = bh_tunnel_config_default();
    fuzz_input in = {data, size};
    cfg.read_reserve = 1 + (size_t)fuzz_u8(&in) * 16;
    cfg.max_bytes = 64 + (size_t)fuzz_u8(&in) * 32; /* 1 would move a byte per loop run */
    uint8_t h2 = fuzz_u8(&in);
    cfg.splice = h2 & 1;
    int transport = h2 >> 1 & 7;
    /* The fds the input may open: the 4 sockets, or where the tunnel may
     * splice, the INPUT_FDS lowest free ones. */
    int can_splice = transport == 0 && cfg.splice;
    int fds[INPUT_FDS], nfds = 0;
    if (can_splice) {
        nfds = INPUT_FDS;
        free_fds(fds, nfds);
    }
    uint8_t h3 = fuzz_u8(&in);
    size_t tail_len[2] = {(size_t)(h3 & 63), (size_t)(h3 >> 2 & 63)};

    bh_buf tb[2];
    for (int s = 0; s < 2; s++) {
        int inner = side_open(f, s, transport == 0 || (transport == 1 && s == 0));
        if (!can_splice) {
            fds[nfds++] = f->peer[s].fd;
            fds[nfds++] = inner;
        }
        f->peer[s].stream = g_stream[s];
        f->peer[s].budget = STREAM_READS * (cfg.read_reserve + 3);
        if (f->peer[s].budget > STREAM_FILLS * cfg.max_bytes)
            f->peer[s].budget = STREAM_FILLS * cfg.max_bytes;
        if (f->peer[s].budget > STREAM_MAX)
            f->peer[s].budget = STREAM_MAX;
        for (size_t i = 0; i < tail_len[s]; i++)
            tails[s][i] = (uint8_t)(0xA0 + s + i);
        CHECK(bh_buf_init(&tb[s], 64) == BH_OK);
        CHECK(bh_buf_append(&tb[s], tails[s], tail_len[s]) == BH_OK);
        /* Peer 1-s receives side s's tail first. */
        f->peer[1 - s].prefix = tails[s];
        f->peer[1 - s].prefix_len = tail_len[s];
    }
    f->in_api = 1;
    int rc = bh_tunnel_start(&f->t, &IO.loop, (uv_stream_t *)&f->side[0],
                             (uv_stream_t *)&f->side[1], &tb[0], &tb[1], &cfg, on_done, f);
    f->in_api = 0;
    CHECK(rc == 0);
    for (int s = 0; s < 2; s++) {
        CHECK(bh_buf_len(&tb[s]) == 0);
        bh_buf_free(&tb[s]);
    }

    int aborted = 0;
    while (in.n >= 2 && !f->done_calls) {
        uint8_t op = fuzz_u8(&in), arg = fuzz_u8(&in);
        int s = arg & 1;
        size_t n = 1 + (size_t)arg * 64;
        test_alloc_fail_all((op & 0x80) != 0);
        switch (op & 7) {
        case 0:
            peer_send(&f->peer[s], n);
            break;
        case 1:
            peer_recv(&f->peer[s], &f->peer[1 - s], n);
            break;
        case 2:
            peer_shutdown(&f->peer[s]);
            break;
        case 3:
            if ((arg & 6) == 6) /* rarer than the rest */
                peer_reset(&f->peer[s]);
            break;
        case 4:
            if ((arg & 14) == 14) {
                f->in_api = 1;
                bh_tunnel_abort(&f->t);
                f->in_api = 0;
                aborted = 1;
            }
            break;
        case 5:
            check_stats(f, tail_len);
            break;
        default:
            run_once();
            break;
        }
        test_alloc_fail_all(0);
    }

    /* Wind down: both peers half-close and read until their input ends. */
    for (int s = 0; s < 2; s++)
        peer_shutdown(&f->peer[s]);
    for (int r = 0; r < DRAIN_ROUNDS && !(f->done_calls && (f->peer[0].ended || f->peer[0].fd < 0) &&
                                          (f->peer[1].ended || f->peer[1].fd < 0));
         r++) {
        run_once();
        for (int s = 0; s < 2; s++)
            peer_recv(&f->peer[s], &f->peer[1 - s], 65536);
        if (r == DRAIN_ROUNDS / 2 && !f->done_calls) {
            bh_tunnel_abort(&f->t); /* a stuck tunnel would be a finding below */
            aborted = 2;
        }
    }
    check_outcome(f, tail_len, aborted);
    for (int s = 0; s < 2; s++)
        peer_reset(&f->peer[s]); /* no TIME_WAIT: thousands of runs would use up the ports */
    check_no_leak(fds, nfds);
    return 0;
}
