/* sink.c - the stream harness's upstream: accepts connections, reads every
 * byte, and after the peer's EOF replies "OK <nbytes> <fnv1a64 16 hex>\n" over
 * all bytes received on that connection, then closes it.
 *
 *   bh_stream_sink --listen 127.0.0.1:0|unix:PATH
 *
 * Prints "listening PORT|PATH" once it accepts; exits 0 on SIGTERM/SIGINT
 * after closing its sockets. One libuv loop, one thread: the sink shares a
 * core with the driver, so it hashes straight out of one shared read buffer
 * and allocates only a small struct per connection. */
#define _GNU_SOURCE /* accept4 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "harness_common.h"

#define SINK_READ_BUF ((size_t)256 * 1024)

typedef struct sink_conn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_write_t wreq;
    uint64_t bytes;
    uint64_t hash;
    char reply[64];
} sink_conn;

static uv_loop_t *g_loop;
static int g_listen_fd = -1;
static int g_is_unix;
static uv_poll_t g_accept_poll;
static uv_signal_t g_sigterm, g_sigint;
static char g_read_buf[SINK_READ_BUF];

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(sink_conn *c)
{
    if (!uv_is_closing(&c->io.h))
        uv_close(&c->io.h, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    *out = uv_buf_init(g_read_buf, (unsigned)sizeof g_read_buf);
}

static void on_reply_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    sink_conn *c = s->data;
    if (nread > 0) {
        c->bytes += (uint64_t)nread;
        c->hash = fnv1a64(c->hash, b->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    uv_read_stop(s);
    if (nread != UV_EOF) {
        conn_close(c);
        return;
    }
    int n = snprintf(c->reply, sizeof c->reply, "OK %" PRIu64 " %016" PRIx64 "\n", c->bytes,
                     c->hash);
    uv_buf_t ub = uv_buf_init(c->reply, (unsigned)n);
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &ub, 1, on_reply_written) != 0)
        conn_close(c);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)events;
    if (status < 0)
        return;
    for (;;) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        sink_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->hash = FNV1A64_OFFSET;
        int rc = g_is_unix ? uv_pipe_init(g_loop, &c->io.pipe, 0) : uv_tcp_init(g_loop, &c->io.tcp);
        if (rc != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->io.h.data = c;
        rc = g_is_unix ? uv_pipe_open(&c->io.pipe, fd) : uv_tcp_open(&c->io.tcp, fd);
        if (rc != 0) {
            fprintf(stderr, "sink: open: %s\n", uv_strerror(rc));
            close(fd);
            conn_close(c);
            continue;
        }
        if (uv_read_start(&c->io.s, on_alloc, on_read) != 0)
            conn_close(c);
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    uv_close(h, h->data ? on_conn_closed : NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    uv_walk(g_loop, close_walk, NULL);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bh_stream_sink --listen ADDR (IPV4:PORT, [IPV6]:PORT or unix:PATH)\n");
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"listen", required_argument, NULL, 'l'},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    hx_addr addr;
    int have_listen = 0, c;
    cli_init("bh_stream_sink");
    while ((c = cli_next_option(argc, argv, long_options, usage)) != -1) {
        switch (c) {
        case 'l':
            hx_addr_option("--listen", optarg, &addr);
            have_listen = 1;
            break;
        }
    }
    if (!have_listen)
        cli_die("--listen is required");
    g_is_unix = addr.is_unix;
    signal(SIGPIPE, SIG_IGN);
    g_loop = uv_default_loop();
    g_listen_fd = hx_listen(&addr, 1024);
    if (g_listen_fd < 0 || hx_set_nonblock(g_listen_fd, 1) != 0)
        return 1;
    uv_poll_init(g_loop, &g_accept_poll, g_listen_fd);
    uv_poll_start(&g_accept_poll, UV_READABLE, on_acceptable);
    uv_signal_init(g_loop, &g_sigterm);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);
    uv_signal_init(g_loop, &g_sigint);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    uv_run(g_loop, UV_RUN_DEFAULT);
    close(g_listen_fd);
    if (addr.is_unix)
        unlink(((struct sockaddr_un *)&addr.ss)->sun_path);
    return uv_loop_close(g_loop) == 0 ? 0 : 1;
}
