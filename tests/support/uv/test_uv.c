/* test_uv.c - libuv loop and socket helpers shared by the tests. */
#include "test_uv.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_timeout(uv_timer_t *t)
{
    int *timed_out = t->data;
    *timed_out = 1;
    uv_stop(t->loop);
}

int test_uv_run(uv_loop_t *loop, unsigned timeout_ms)
{
    uv_timer_t timer;
    int timed_out = 0;
    uv_timer_init(loop, &timer);
    timer.data = &timed_out;
    uv_timer_start(&timer, on_timeout, timeout_ms, 0);
    uv_unref((uv_handle_t *)&timer);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return timed_out ? -1 : 0;
}

int test_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM, 0, fds); }

int test_uv_socketpair(uv_loop_t *loop, uv_pipe_t *a, uv_pipe_t *b)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return UV_EIO;
    int rc = uv_pipe_init(loop, a, 0);
    if (rc == 0)
        rc = uv_pipe_init(loop, b, 0);
    if (rc == 0)
        rc = uv_pipe_open(a, fds[0]);
    if (rc == 0)
        rc = uv_pipe_open(b, fds[1]);
    return rc;
}

struct tcp_pair_ctx {
    uv_tcp_t *server;
    int accepted;
    int connected;
    int status;
};

static void on_connection(uv_stream_t *listener, int status)
{
    struct tcp_pair_ctx *c = listener->data;
    if (status < 0) {
        c->status = status;
        return;
    }
    uv_tcp_init(listener->loop, c->server);
    c->status = uv_accept(listener, (uv_stream_t *)c->server);
    c->accepted = 1;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tcp_pair_ctx *c = req->data;
    if (status < 0)
        c->status = status;
    c->connected = 1;
}

int test_uv_tcp_pair(uv_loop_t *loop, uv_tcp_t *client, uv_tcp_t *server)
{
    uv_tcp_t listener;
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    struct tcp_pair_ctx c = {server, 0, 0, 0};
    uv_connect_t req;

    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &listener);
    listener.data = &c;
    int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&listener, 8, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &namelen);
    if (rc == 0)
        rc = uv_tcp_init(loop, client);
    if (rc == 0) {
        req.data = &c;
        rc = uv_tcp_connect(&req, client, (const struct sockaddr *)&bound, on_connect);
    }
    for (int i = 0; rc == 0 && i < 1000 && !(c.accepted && c.connected); i++)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&listener, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (rc == 0 && c.status != 0)
        rc = c.status;
    if (rc == 0 && !(c.accepted && c.connected))
        rc = UV_ETIMEDOUT;
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int test_uv_loop_teardown(uv_loop_t *loop)
{
    uv_walk(loop, close_walk, NULL);
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    return uv_loop_close(loop);
}

void test_set_sockbuf(int fd, int sndbuf, int rcvbuf)
{
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}
