/* tunnel_fixture.c - loopback TCP fixture for the bh_tunnel tests. */
#include "tunnel_fixture.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_uv.h"

static uint8_t g_table[65536];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof g_table; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        g_table[i] = (uint8_t)x;
    }
}

uint8_t tf_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(g_table[(i + seed * 40503u) & 0xffffu] ^ (uint8_t)(i >> 16) ^ (uint8_t)seed);
}

/* Connected loopback pair: *outer is blocking, *inner nonblocking. */
static void tcp_fd_pair(int *outer, int *inner)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&addr, &len), 0);
    *outer = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*outer >= 0);
    assert_int_equal(connect(*outer, (struct sockaddr *)&addr, sizeof addr), 0);
    *inner = accept(l, NULL, NULL);
    assert_true(*inner >= 0);
    close(l);
    int one = 1;
    setsockopt(*outer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void tf_setup(tf *t)
{
    pthread_once(&g_once, table_init);
    memset(t, 0, sizeof *t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    for (int s = 0; s < 2; s++) {
        int inner;
        tcp_fd_pair(&t->peer[s].fd, &inner);
        assert_int_equal(uv_tcp_init(&t->loop, &t->side[s]), 0);
        assert_int_equal(uv_tcp_open(&t->side[s], inner), 0);
        t->peer[s].recv_end = -1;
        t->peer[s].mismatch_at = SIZE_MAX;
        t->peer[s].max_chunk = 4096;
        t->peer[s].seed = (uint32_t)(s + 1);
    }
    t->peer[0].expect_seed = t->peer[1].seed;
    t->peer[1].expect_seed = t->peer[0].seed;
    t->status = 1;
}

/* One thread per peer, poll()ing its socket: it sends while it has bytes
 * to send and receives until its input ends. A socket's pending error (the
 * RST) is reported once, to whichever call comes first: a send that fails
 * with ECONNRESET or EPIPE therefore marks the input as ended by a reset
 * too (a peer never sends after its own shutdown, and the tunnel never
 * closes a side cleanly before both peers shut down). */
static int peer_recv(tf_peer *p, uint8_t *buf, size_t cap)
{
    ssize_t n = recv(p->fd, buf, cap, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        p->recv_end = n == 0 ? (p->send_err ? ECONNRESET : 0) : errno;
        return -1;
    }
    for (ssize_t i = 0; i < n && p->mismatch_at == SIZE_MAX; i++) {
        size_t at = p->received + (size_t)i;
        uint8_t want = at < p->prefix_len ? p->prefix[at]
                                          : tf_byte(p->expect_seed, at - p->prefix_len);
        if (buf[i] != want)
            p->mismatch_at = at;
    }
    p->received += (size_t)n;
    return 0;
}

static void peer_finish_sending(tf_peer *p)
{
    if (p->end == PEER_SHUTDOWN) {
        shutdown(p->fd, SHUT_WR);
    } else if (p->end == PEER_RESET) {
        struct linger lg = {1, 0};
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(p->fd);
        p->fd = -1;
    }
}

static void *peer_main(void *arg)
{
    tf_peer *p = arg;
    uint8_t buf[65536];
    uint32_t x = p->seed * 2654435761u + 1;
    size_t off = 0, chunk = 0;
    int sending = 1, receiving = !p->no_receiver;
    if (p->send_len == 0 && !p->wait_for_eof) {
        sending = 0;
        peer_finish_sending(p);
    }
    while ((sending || receiving) && p->fd >= 0) {
        int want_out = sending && !(p->wait_for_eof && receiving);
        struct pollfd pf = {p->fd, (short)((receiving ? POLLIN : 0) | (want_out ? POLLOUT : 0)), 0};
        if (!want_out && !receiving)
            break;
        if (poll(&pf, 1, -1) < 0)
            continue;
        if (receiving && (pf.revents & (POLLIN | POLLHUP | POLLERR))) {
            size_t cap = sizeof buf;
            if (p->recv_limit && p->recv_limit - p->received < cap)
                cap = p->recv_limit - p->received;
            if (peer_recv(p, buf, cap) != 0 || (p->recv_limit && p->received == p->recv_limit))
                receiving = 0;
            continue;
        }
        if (!want_out || !(pf.revents & (POLLOUT | POLLERR | POLLHUP)))
            continue;
        if (chunk == 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            chunk = 1 + x % (p->max_chunk < sizeof buf ? p->max_chunk : sizeof buf);
            if (chunk > p->send_len - off)
                chunk = p->send_len - off;
        }
        uint8_t out[65536];
        for (size_t i = 0; i < chunk; i++)
            out[i] = tf_byte(p->seed, off + i);
        ssize_t w = chunk ? send(p->fd, out, chunk, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0) {
            p->send_err = errno;
            sending = 0;
            continue;
        }
        off += (size_t)w;
        chunk -= (size_t)w;
        if (off == p->send_len) {
            sending = 0;
            peer_finish_sending(p);
        }
    }
    return NULL;
}

void tf_start_peers(tf *t)
{
    for (int s = 0; s < 2; s++)
        assert_int_equal(pthread_create(&t->peer[s].thread, NULL, peer_main, &t->peer[s]), 0);
}

void tf_done(bh_tunnel *tn, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    tf *t = ctx;
    (void)tn;
    t->done_calls++;
    t->status = status;
    t->final = *st;
}

int tf_run(tf *t, unsigned timeout_ms)
{
    int rc = test_uv_run(&t->loop, timeout_ms);
    for (int s = 0; s < 2; s++) {
        tf_peer *p = &t->peer[s];
        if (rc != 0 && p->fd >= 0)
            shutdown(p->fd, SHUT_RDWR); /* unblock the threads */
        pthread_join(p->thread, NULL);
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
    }
    assert_int_equal(test_uv_loop_teardown(&t->loop), 0);
    return rc;
}
