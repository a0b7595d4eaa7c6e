/* fuzz_tunnel.c - libFuzzer target for bh_tunnel's relay state machine over
 * real loopback TCP (so the splice path takes part).
 *
 * Input: a 4-byte header (read_reserve 1..4081, max_bytes 64..8224, splice on
 * or off, tail lengths 0..63 for both sides), then operations, each an
 * opcode byte and an argument byte, driven from one thread against the two
 * outer ends (nonblocking sockets) and the loop: a peer sends up to N bytes
 * of its stream, receives up to N bytes, half-closes, resets (SO_LINGER 0
 * and close), the loop runs once, the tunnel is aborted, or its stats are
 * read. The top bit of an opcode makes every allocation through the
 * library's hook fail during that operation (and the loop run after it).
 * At the end both peers half-close (if still open) and drain until their
 * input ends and the tunnel has reported.
 *
 * Invariants checked:
 * - each peer receives a prefix of (the other side's tail, then the other
 *   peer's stream), byte-exact and in order;
 * - a clean EOF at a peer means it received everything the other peer sent
 *   (and the tail): a stream cut short never ends cleanly (unless the peer's
 *   own send or shutdown already reported the reset: a socket reports its
 *   error once);
 * - done_cb runs exactly once, never inside an API call; status 0 means
 *   every byte sent was relayed and each peer still open got all of it and
 *   a clean EOF; the counters never exceed what was sent;
 * - once done, the loop closes (every handle closed) and nothing allocated
 *   through the hook is left. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bytes_handoff.h>
#include <bytes_handoff/block_cache.h>
#include <bytes_handoff/uv.h>

#define DRAIN_ROUNDS 400000 /* loop runs to wind down; ends as soon as done */

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_tunnel: check failed at %s:%d: %s\n", __FILE__,     \
                    __LINE__, #cond);                                                 \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* ---- allocator hook ------------------------------------------------------- */

static struct {
    int fail;
    size_t live;
} g_hook;

static void *hook_malloc(void *ctx, size_t n)
{
    (void)ctx;
    if (g_hook.fail)
        return NULL;
    void *p = malloc(n);
    if (p)
        g_hook.live++;
    return p;
}

static void *hook_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    if (g_hook.fail)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        g_hook.live++;
    return q;
}

static void hook_free(void *ctx, void *p)
{
    (void)ctx;
    if (p)
        g_hook.live--;
    free(p);
}

/* ---- peers ------------------------------------------------------------------ */

typedef struct peer {
    int fd;              /* -1 once reset */
    uint8_t seed;
    size_t sent;         /* bytes of this peer's stream the kernel took */
    int shut, reset;
    const uint8_t *prefix; /* the other side's tail, received first */
    size_t prefix_len;
    size_t received;
    int ended, end_err;  /* input ended: 0 = EOF, else errno */
    int saw_reset;       /* a send or shutdown failed: the RST was reported
                            there (the socket reports its error only once) */
} peer;

static uint8_t stream_byte(uint8_t seed, size_t i)
{
    return (uint8_t)(seed * 31u + i * 7u + (i >> 8) * 13u);
}

static void peer_send(peer *p, size_t n)
{
    uint8_t buf[4096];
    if (p->fd < 0 || p->shut)
        return;
    if (n > sizeof buf)
        n = sizeof buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = stream_byte(p->seed, p->sent + i);
    ssize_t w = send(p->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0)
        p->sent += (size_t)w;
    else if (w < 0 && errno != EAGAIN && errno != EINTR)
        p->saw_reset = 1;
}

/* other: the peer whose stream this one receives. */
static void peer_recv(peer *p, const peer *other, size_t n)
{
    uint8_t buf[8192];
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
        if (r == 0 && !p->saw_reset) /* clean EOF: everything arrived */
            CHECK(p->received == p->prefix_len + other->sent && other->shut);
        return;
    }
    for (ssize_t i = 0; i < r; i++) {
        size_t at = p->received + (size_t)i;
        uint8_t want = at < p->prefix_len ? p->prefix[at]
                                          : stream_byte(other->seed, at - p->prefix_len);
        CHECK(buf[i] == want);
    }
    p->received += (size_t)r;
    CHECK(p->received <= p->prefix_len + other->sent);
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
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(p->fd);
    p->fd = -1;
    p->reset = 1;
}

/* ---- fixture ----------------------------------------------------------------- */

static int g_listener = -1;
static struct sockaddr_in g_addr;

static void listener_init(void)
{
    if (g_listener >= 0)
        return;
    socklen_t len = sizeof g_addr;
    g_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(g_listener >= 0);
    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(g_listener, (struct sockaddr *)&g_addr, sizeof g_addr) == 0);
    CHECK(listen(g_listener, 16) == 0);
    CHECK(getsockname(g_listener, (struct sockaddr *)&g_addr, &len) == 0);
}

/* A connected loopback pair: *outer (nonblocking) and *inner.  libFuzzer's
 * -timeout alarm (SIGALRM, no SA_RESTART) can interrupt any blocking call, so
 * the connect is nonblocking and every wait retries on EINTR. */
static void tcp_pair(int *outer, int *inner)
{
    *outer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(*outer >= 0);
    if (connect(*outer, (struct sockaddr *)&g_addr, sizeof g_addr) != 0 &&
        errno != EINPROGRESS && errno != EINTR) {
        fprintf(stderr, "fuzz_tunnel: connect: %s\n", strerror(errno));
        abort();
    }
    do
        *inner = accept(g_listener, NULL, NULL);
    while (*inner < 0 && errno == EINTR);
    CHECK(*inner >= 0);
    struct pollfd pfd = {.fd = *outer, .events = POLLOUT};
    int rc;
    do
        rc = poll(&pfd, 1, -1);
    while (rc < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof err;
    CHECK(rc == 1 && getsockopt(*outer, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0);
    int one = 1;
    setsockopt(*outer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

typedef struct fx {
    uv_loop_t loop;
    uv_tcp_t side[2];
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

static void run_once(fx *f) { uv_run(&f->loop, UV_RUN_NOWAIT); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const bh_allocator hook = {hook_malloc, hook_realloc, hook_free, NULL};
    static uint8_t tails[2][64];
    signal(SIGPIPE, SIG_IGN);
    bh_set_allocator(&hook);
    memset(&g_hook, 0, sizeof g_hook);
    listener_init();

    fx *f = calloc(1, sizeof *f);
    CHECK(f);
    bh_tunnel_config cfg = bh_tunnel_config_default();
    cfg.read_reserve = 1 + (size_t)data[0] * 16;
    cfg.max_bytes = 64 + (size_t)data[1] * 32; /* 1 would move a byte per loop run */
    cfg.splice = data[2] & 1;
    size_t tail_len[2] = {(size_t)(data[3] & 63), (size_t)(data[3] >> 2 & 63)};
    data += 4;
    size -= 4;

    CHECK(uv_loop_init(&f->loop) == 0);
    bh_buf tb[2];
    for (int s = 0; s < 2; s++) {
        int inner;
        tcp_pair(&f->peer[s].fd, &inner);
        CHECK(uv_tcp_init(&f->loop, &f->side[s]) == 0);
        CHECK(uv_tcp_open(&f->side[s], inner) == 0);
        f->peer[s].seed = (uint8_t)(s + 1);
        for (size_t i = 0; i < tail_len[s]; i++)
            tails[s][i] = (uint8_t)(0xA0 + s + i);
        CHECK(bh_buf_init(&tb[s], 64) == BH_OK);
        CHECK(bh_buf_append(&tb[s], tails[s], tail_len[s]) == BH_OK);
        /* Peer 1-s receives side s's tail first. */
        f->peer[1 - s].prefix = tails[s];
        f->peer[1 - s].prefix_len = tail_len[s];
    }
    f->in_api = 1;
    int rc = bh_tunnel_start(&f->t, &f->loop, (uv_stream_t *)&f->side[0],
                             (uv_stream_t *)&f->side[1], &tb[0], &tb[1], &cfg, on_done, f);
    f->in_api = 0;
    CHECK(rc == 0);
    for (int s = 0; s < 2; s++) {
        CHECK(bh_buf_len(&tb[s]) == 0);
        bh_buf_free(&tb[s]);
    }

    int aborted = 0;
    for (size_t i = 0; i + 1 < size && !f->done_calls; i += 2) {
        uint8_t op = data[i], arg = data[i + 1];
        int s = arg & 1;
        size_t n = 1 + (size_t)arg * 64;
        g_hook.fail = (op & 0x80) != 0;
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
        case 5: {
            struct bh_tunnel_stats st;
            bh_tunnel_stats(&f->t, &st);
            CHECK(st.bytes[0] <= tail_len[0] + f->peer[0].sent);
            CHECK(st.bytes[1] <= tail_len[1] + f->peer[1].sent);
            CHECK(st.spliced[0] <= st.bytes[0] && st.spliced[1] <= st.bytes[1]);
            break;
        }
        default:
            run_once(f);
            break;
        }
        g_hook.fail = 0;
    }

    /* Wind down: both peers half-close and read until their input ends. */
    for (int s = 0; s < 2; s++)
        peer_shutdown(&f->peer[s]);
    for (int r = 0; r < DRAIN_ROUNDS && !(f->done_calls && (f->peer[0].ended || f->peer[0].fd < 0) &&
                                          (f->peer[1].ended || f->peer[1].fd < 0));
         r++) {
        run_once(f);
        for (int s = 0; s < 2; s++)
            peer_recv(&f->peer[s], &f->peer[1 - s], 65536);
        if (r == DRAIN_ROUNDS / 2 && !f->done_calls) {
            bh_tunnel_abort(&f->t); /* a stuck tunnel would be a finding below */
            aborted = 2;
        }
    }
    CHECK(f->done_calls == 1);
    CHECK(aborted != 2);
    if (f->status == 0) /* a reset or abort came too late to matter */
        for (int s = 0; s < 2; s++) {
            CHECK(f->st.bytes[1 - s] == tail_len[1 - s] + f->peer[1 - s].sent);
            if (!f->peer[s].reset && !f->peer[s].saw_reset)
                CHECK(f->peer[s].ended && f->peer[s].end_err == 0 &&
                      f->peer[s].received == f->st.bytes[1 - s]);
        }
    for (int s = 0; s < 2; s++)
        peer_reset(&f->peer[s]); /* no TIME_WAIT: thousands of runs would use up the ports */
    CHECK(uv_loop_close(&f->loop) == 0);
    bh_block_cache_trim(); /* blocks the readers gave back to the thread's cache */
    CHECK(g_hook.live == 0);
    free(f);
    return 0;
}
