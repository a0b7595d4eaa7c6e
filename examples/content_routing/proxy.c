/* proxy.c - the content_routing proxy: one session per client connection,
 * each with its own upstream connection to the destination its ROUTE line
 * names (see examples/content_routing/main.c for the protocol).
 *
 * Routing phase, two directions, each a bh_reader into a bh_buf feeding a
 * bh_writeq on the other socket:
 *   client --in/in_reader--> parser --split_prefix--> to_up --> upstream
 *   upstream --back/back_reader--> freeze --> to_client --> client
 * Route frames are peeked without consuming until complete, then split off
 * the buffer as owned slices (no copy) and queued. At "TUNNEL\n" the client
 * is no longer read; once the upstream is connected and both queues have
 * drained (drain callbacks at 0 bytes), the queues are closed and a
 * bh_tunnel relays the rest both ways, starting with the bytes already read
 * behind the marker (the parser's tail) and any reply bytes read: it handles
 * backpressure, half-close and resets (an RST from one side is passed on as
 * an RST, also when libuv reports it as EOF) and closes both sockets.
 *
 * Backpressure: a slice the queue refuses with BH_EFULL is kept in `held`,
 * reading stops, and the queue's drain callback queues it and resumes. So a
 * session holds at most one read buffer (max_token or read_reserve bytes),
 * one held slice and a write budget per direction.
 *
 * Ending: a session ends completed (client EOF, upstream flushed and shut
 * down, upstream reply forwarded, client shut down; in tunnel mode: the
 * tunnel ended with status 0), rejected (an ERR line is
 * written, the client's write side shut down, its input discarded until EOF)
 * or aborted (a socket failed, input ended inside a frame, or the proxy is
 * stopping: the upstream is reset rather than closed, see the caveat in
 * main.c). The session is freed when its last handle is closed. */
#include "proxy_internal.h"
#include "log.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cr_proxy_config_default(cr_proxy_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->default_dest = -1;
    cfg->read_reserve = BH_READ_RESERVE_DEFAULT;
    cfg->write_budget = (size_t)256 * 1024;
    cfg->max_line = 1024;
    cfg->max_frame = (size_t)64 * 1024;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 300 * 1000;
}

static size_t in_max_len(const cr_proxy_config *cfg)
{
    cr_parser p;
    cr_parser_init(&p, cfg->max_line, cfg->max_frame, cfg->line_frames);
    size_t t = cr_parser_max_token(&p);
    return t > cfg->read_reserve ? t : cfg->read_reserve;
}

int cr_proxy_config_check(const cr_proxy_config *cfg, char *err, size_t n)
{
    if (cfg->ndests == 0) {
        snprintf(err, n, "no destination (--dest NAME=IPV4:PORT or --upstream IPV4:PORT)");
        return -1;
    }
    if (cfg->max_line < 16 || cfg->max_line > ((size_t)1 << 20)) {
        snprintf(err, n, "--max-line must be in [16, 1 MiB]");
        return -1;
    }
    if (cfg->max_frame > ((size_t)1 << 30)) {
        snprintf(err, n, "--max-frame must be at most 1 GiB");
        return -1;
    }
    if (cfg->read_reserve == 0 || cfg->read_reserve > ((size_t)1 << 30)) {
        snprintf(err, n, "--read-reserve must be in [1, 1 GiB]");
        return -1;
    }
    /* A refused slice (at most one buffer's worth) is retried once the
     * queue has drained to write_budget / 2, so it must fit in the rest. */
    size_t need = in_max_len(cfg);
    if (cfg->write_budget - cfg->write_budget / 2 < need) {
        snprintf(err, n,
                 "--write-budget %zu too small: must be at least 2 x %zu "
                 "(max(max_line + 1 + max_frame, read_reserve))",
                 cfg->write_budget, need);
        return -1;
    }
    return 0;
}

/* ---- listener ------------------------------------------------------------ */

/* ---- accepting under descriptor exhaustion -------------------------------
 * A session needs a descriptor for its upstream, and libuv's next accept()
 * one more: if accept() itself fails for lack of descriptors, libuv accepts
 * and closes every waiting connection (its reserve-descriptor trick). So the
 * proxy checks that two descriptors are free before it takes a connection.
 * When they are not, it leaves the connection libuv just accepted with libuv,
 * which then stops polling the listener (the backlog waits in the kernel,
 * the sessions already open go on), and retries every ACCEPT_RETRY_MS. One
 * line is logged when such an episode starts and one when it ends (once the
 * backlog has been worked off). Sessions routed later (ROUTE lines) open
 * their upstream after the check; one that finds no descriptor is answered
 * "ERR upstream unavailable". */

static void on_accept_retry(uv_timer_t *t);

/* 1 when n (at most 2) more descriptors can be opened now. */
static int fds_free(cr_proxy *px, int n)
{
    uv_os_fd_t lfd;
    int fds[2], got = 0;
    if (uv_fileno((uv_handle_t *)&px->listener, &lfd) != 0)
        return 1;
    while (got < n && (fds[got] = fcntl(lfd, F_DUPFD_CLOEXEC, 0)) >= 0)
        got++;
    for (int i = 0; i < got; i++)
        close(fds[i]);
    return got == n;
}

static void accept_pause(cr_proxy *px)
{
    px->refused++;
    uv_timer_start(&px->accept_retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
    if (px->accept_paused)
        return;
    px->accept_paused = 1;
    px->st.fd_episodes++;
    log_msg(LOG_LEVEL_WARN, 0, NULL,
            "out of descriptors (%llu sessions open): pausing accepts, retrying every "
            "%d ms (episode %llu)",
            (unsigned long long)px->st.live, ACCEPT_RETRY_MS,
            (unsigned long long)px->st.fd_episodes);
}

/* A connection was taken: the episode ends once no other one waits. */
static void accept_served(cr_proxy *px)
{
    uv_os_fd_t lfd;
    if (!px->accept_paused || uv_fileno((uv_handle_t *)&px->listener, &lfd) != 0)
        return;
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
        return;
    log_msg(LOG_LEVEL_INFO, 0, NULL, "accepting again after %llu refused attempts (episode %llu)",
            (unsigned long long)px->refused, (unsigned long long)px->st.fd_episodes);
    px->accept_paused = 0;
    px->refused = 0;
}

static void on_accept(uv_stream_t *server, int status)
{
    cr_proxy *px = server->data;
    if (status < 0)
        return;
    if (!fds_free(px, 2)) {
        accept_pause(px); /* libuv keeps the connection until uv_accept() */
        return;
    }
    session *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->px = px;
    s->id = px->next_id;
    px->next_id += px->id_step;
    if (uv_tcp_init(px->loop, &s->client) != 0) {
        free(s);
        return;
    }
    s->handles = 1;
    s->next = px->sessions;
    if (px->sessions)
        px->sessions->prev = s;
    px->sessions = s;
    px->st.live++;
    idle_trim_busy(&px->trim);
    px->st.accepted++;

    bh_buf_init(&s->in, px->in_max);
    cr_parser_init(&s->parser, px->cfg.max_line, px->cfg.max_frame, px->cfg.line_frames);
    bh_reader_init(&s->in_reader, (uv_stream_t *)&s->client, &s->in, px->cfg.read_reserve,
                   session_on_client_read, s);
    bh_writeq_init(&s->to_client, px->loop, (uv_stream_t *)&s->client, &px->wcfg);
    bh_writeq_set_drain_cb(&s->to_client, px->cfg.write_budget / 2, session_on_client_drain, s);
    if (uv_accept(server, (uv_stream_t *)&s->client) != 0) {
        session_end(s, OUT_ABORTED, "accept failed");
        return;
    }
    accept_served(px);
    int len = (int)sizeof s->peer;
    if (uv_tcp_getpeername(&s->client, (struct sockaddr *)&s->peer, &len) != 0)
        s->peer.ss_family = AF_UNSPEC;
    uv_tcp_nodelay(&s->client, 1);
    s->header_deadline = uv_now(px->loop) + px->cfg.header_timeout_ms;
    int rc = session_timeout_update(s);
    if (rc == BH_OK && px->cfg.idle_timeout_ms > 0)
        rc = bh_writeq_set_stall_timeout(&s->to_client, px->cfg.idle_timeout_ms);
    if (rc != BH_OK) {
        session_fail(s, "client timer", rc);
        return;
    }
    if (px->cfg.default_dest >= 0 && session_start_upstream(s, &px->cfg.dests[px->cfg.default_dest]) != 0)
        return;
    if (bh_reader_start(&s->in_reader) != BH_OK)
        session_end(s, OUT_ABORTED, "read start failed");
}

static void on_accept_retry(uv_timer_t *t)
{
    cr_proxy *px = t->data;
    on_accept((uv_stream_t *)&px->listener, 0);
}

static void on_listener_closed(uv_handle_t *h)
{
    cr_proxy *px = h->data;
    px->listener_open = 0;
}

int cr_proxy_start(cr_proxy **out, uv_loop_t *loop, const cr_proxy_config *cfg,
                   const struct sockaddr *addr, int *port)
{
    char why[160];
    *out = NULL;
    if (cr_proxy_config_check(cfg, why, sizeof why) != 0)
        return BH_EINVAL;
    cr_proxy *px = calloc(1, sizeof *px);
    if (!px)
        return BH_ENOMEM;
    px->loop = loop;
    px->cfg = *cfg;
    px->wcfg = bh_writeq_config_default();
    px->wcfg.max_bytes = cfg->write_budget;
    px->in_max = in_max_len(cfg);
    px->next_id = cfg->worker ? (uint64_t)workers_index(cfg->worker) + 1 : 1;
    px->id_step = cfg->worker ? (uint64_t)workers_count(cfg->worker) : 1;
    int rc = uv_tcp_init(loop, &px->listener);
    if (rc != 0) {
        free(px);
        return rc;
    }
    px->listener_open = 1;
    px->listener.data = px;
    uv_timer_init(loop, &px->accept_retry); /* cannot fail */
    px->accept_retry.data = px;
    (void)idle_trim_init(&px->trim, loop, TRIM_AFTER_IDLE_MS); /* cannot fail */
    if (cfg->worker) {
        rc = workers_listen(cfg->worker, &px->listener, addr, LISTEN_BACKLOG, on_accept);
    } else {
        rc = uv_tcp_bind(&px->listener, addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&px->listener, LISTEN_BACKLOG, on_accept);
    }
    if (rc != 0) {
        /* The caller runs the loop to let the close callback run. */
        uv_close((uv_handle_t *)&px->listener, on_listener_closed);
        uv_close((uv_handle_t *)&px->accept_retry, NULL);
        idle_trim_close(&px->trim);
        *out = px;
        return rc;
    }
    if (port)
        *port = cr_bound_port(&px->listener);
    *out = px;
    return 0;
}

void cr_proxy_get_stats(const cr_proxy *px, struct cr_proxy_stats *out) { *out = px->st; }

void cr_proxy_stop(cr_proxy *px)
{
    if (px->listener_open && !uv_is_closing((uv_handle_t *)&px->listener))
        uv_close((uv_handle_t *)&px->listener, on_listener_closed);
    if (!uv_is_closing((uv_handle_t *)&px->accept_retry))
        uv_close((uv_handle_t *)&px->accept_retry, NULL);
    idle_trim_close(&px->trim);
    for (session *s = px->sessions; s; s = s->next)
        session_end(s, OUT_ABORTED, "proxy stopping");
}

void cr_proxy_free(cr_proxy *px)
{
    if (!px)
        return;
    free(px);
}

int cr_bound_port(const uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return cli_addr_port(&ss);
}
