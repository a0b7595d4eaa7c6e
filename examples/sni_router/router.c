/* router.c - sni_router's connections: accept, read the ClientHello into a
 * bh_buf without consuming it, route by its server name, connect the backend
 * and hand both sockets and the buffered bytes to a bh_tunnel.
 *
 * A connection moves HELLO -> CONNECTING -> TUNNEL, or to REJECTING
 * (reject.c). One uv_timer per connection bounds the hello and then the
 * backend connect; it is closed when the tunnel starts, and the hello-phase
 * state (sni_phase) is freed with it. The connection is freed when the
 * tunnel has called back (it closes client and backend itself) or, without a
 * tunnel, when every handle is closed. */
#include "conn.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

/* ---- lifetime ------------------------------------------------------------- */

static void phase_free(sni_conn *c)
{
    if (!c->ph)
        return;
    bh_buf_free(&c->ph->buf);
    bh_free(c->ph);
    c->ph = NULL;
}

static void conn_free_if_done(sni_conn *c)
{
    if (c->handles > 0 || c->tunnel_running)
        return;
    sni_router *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->live_count--;
    if (c->route)
        c->route->stats.active--;
    phase_free(c);
    bh_free(c);
    /* The last connection is gone: unless another comes soon, give cached
     * blocks and free heap back. */
    if (r->live_count == 0)
        idle_trim_idle(&r->trim);
}

static void on_handle_closed(uv_handle_t *h)
{
    sni_conn *c = h->data;
    c->handles--;
    if (c->state == ST_TUNNEL && c->ph && h == (uv_handle_t *)&c->ph->timer)
        phase_free(c); /* the last of the hello phase */
    conn_free_if_done(c);
}

static void close_handle(sni_conn *c, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = c;
        uv_close(h, on_handle_closed);
    }
}

void sni_conn_close(sni_conn *c)
{
    if (c->ph)
        close_handle(c, (uv_handle_t *)&c->ph->timer);
    if (c->client_owned)
        close_handle(c, (uv_handle_t *)&c->client);
    if (c->backend_init)
        close_handle(c, (uv_handle_t *)&c->backend);
}

/* ---- tunnel --------------------------------------------------------------------- */

static void on_tunnel_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    (void)t;
    sni_conn *c = ctx;
    sni_router *r = c->r;
    c->route->stats.bytes_up += st->bytes[0];
    c->route->stats.bytes_down += st->bytes[1];
    for (int d = 0; d < 2; d++) {
        r->backpressure[d] += st->backpressure[d];
        r->backpressure_ms[d] += st->backpressure_ms[d];
    }
    if (status == 0)
        r->tunnel_clean++;
    else if (status == UV_ETIMEDOUT)
        r->tunnel_idle++;
    else if (bh_tunnel_peer_gone(status) || status == BH_ECANCELED)
        r->tunnel_reset++;
    else
        r->tunnel_other++;
    if (status != 0 && !r->cfg->quiet)
        log_msg(LOG_LEVEL_WARN, c->id, &c->peer.sa,
                "tunnel of route %s ended: %s (%" PRIu64 " bytes up, %" PRIu64 " down)",
                c->route->name, bh_err_name(status), st->bytes[0], st->bytes[1]);
    c->tunnel_running = 0;
    conn_free_if_done(c);
}

static void on_backend_connected(uv_connect_t *req, int status)
{
    sni_conn *c = req->data;
    sni_router *r = c->r;
    if (c->state != ST_CONNECTING)
        return; /* timed out meanwhile: already rejected */
    if (status < 0) {
        c->route->stats.failed++;
        sni_reject(c, SNI_BACKEND_FAILED);
        return;
    }
    uv_tcp_nodelay(&c->backend, 1);
    bh_tunnel_config cfg = bh_tunnel_config_default();
    cfg.idle_timeout_ms = r->cfg->idle_timeout_ms;
    cfg.read_reserve = r->cfg->read_reserve;
    /* The hello reader is not stopped: the tunnel's reader takes the
     * reading stream over (no uv_read_stop/uv_read_start, two epoll_ctl
     * calls fewer per connection). */
    int rc = bh_tunnel_start(&c->tunnel, r->loop, (uv_stream_t *)&c->client,
                             (uv_stream_t *)&c->backend, &c->ph->buf, NULL, &cfg, on_tunnel_done, c);
    if (rc != 0) {
        log_msg(LOG_LEVEL_ERROR, c->id, &c->peer.sa, "tunnel start failed: %s",
                bh_strerror(rc));
        c->route->stats.failed++;
        sni_reject(c, SNI_BACKEND_FAILED);
        return;
    }
    c->state = ST_TUNNEL;
    c->tunnel_running = 1;
    c->client_owned = 0;
    c->backend_init = 0;
    c->handles -= 2; /* the tunnel closes client and backend */
    bh_buf_free(&c->ph->buf);
    close_handle(c, (uv_handle_t *)&c->ph->timer);
}

static void on_connect_timeout(uv_timer_t *t)
{
    sni_conn *c = t->data;
    c->route->stats.failed++;
    sni_reject(c, SNI_BACKEND_FAILED);
}

static void route(sni_conn *c)
{
    sni_router *r = c->r;
    const sni_hello *h = &c->ph->hello;
    sni_route *to = h->has_sni ? sni_table_lookup(r->table, h->sni, h) : r->table->fallback;
    if (!to) {
        sni_reject(c, h->has_sni ? SNI_UNKNOWN_NAME : SNI_NO_SNI);
        return;
    }
    c->route = to;
    to->stats.accepted++;
    to->stats.active++;
    c->state = ST_CONNECTING;
    /* The client is still read while the backend connects: whatever it sends
     * meanwhile joins the buffered bytes the tunnel writes first. */
    uv_timer_start(&c->ph->timer, on_connect_timeout, r->cfg->hello_timeout_ms, 0);
    if (uv_tcp_init(r->loop, &c->backend) != 0) {
        to->stats.failed++;
        sni_reject(c, SNI_BACKEND_FAILED);
        return;
    }
    c->backend_init = 1;
    c->handles++;
    c->ph->connect.data = c;
    if (uv_tcp_connect(&c->ph->connect, &c->backend, (const struct sockaddr *)&to->addr,
                       on_backend_connected) != 0) {
        to->stats.failed++;
        sni_reject(c, SNI_BACKEND_FAILED);
    }
}

/* ---- hello phase ------------------------------------------------------------------- */

static sni_kind kind_of(int status)
{
    switch (status) {
    case SNI_HELLO_NOT_TLS: return SNI_NOT_TLS;
    case SNI_HELLO_SSLV2: return SNI_SSLV2;
    case SNI_HELLO_TOO_LARGE: return SNI_TOO_LARGE;
    case SNI_HELLO_BAD_NAME: return SNI_BAD_NAME;
    default: return SNI_MALFORMED;
    }
}

void sni_on_client_read(bh_reader *rd, int status, void *ctx)
{
    (void)rd;
    sni_conn *c = ctx;
    if (c->state == ST_REJECTING) {
        sni_reject_input(c, status);
        return;
    }
    if (c->state == ST_CONNECTING) {
        /* Bytes after the hello stay buffered for the tunnel; a full buffer
         * just stops the reader until the tunnel reads instead. A clean EOF
         * is no reason to give up: the client may be waiting for its answer
         * with its write side shut. It is remembered (a refusal then closes
         * once answered), and the tunnel's first read of the client sees it
         * again (a socket at EOF keeps reading 0 bytes), so the backend gets
         * every buffered byte and then the EOF. */
        if (status == UV_EOF)
            c->client_eof = 1;
        else if (status != BH_OK && status != BH_ETOOLONG)
            sni_reject(c, SNI_CLIENT_GONE);
        return;
    }
    if (status == BH_ETOOLONG) {
        sni_reject(c, SNI_TOO_LARGE);
        return;
    }
    if (status != BH_OK) {
        sni_reject(c, SNI_CLIENT_GONE);
        return;
    }
    int rc = sni_hello_parse(&c->ph->hello, bh_buf_data(&c->ph->buf), bh_buf_len(&c->ph->buf));
    if (rc == SNI_HELLO_MORE)
        return;
    if (rc == SNI_HELLO_DONE)
        route(c);
    else
        sni_reject(c, kind_of(rc));
}

static void on_hello_timeout(uv_timer_t *t)
{
    sni_reject(t->data, SNI_HELLO_TIMEOUT);
}

static void refuse(sni_router *r, uv_stream_t *server);

static void on_refused_closed(uv_handle_t *h)
{
    sni_router *r = h->data;
    r->spare_busy = 0;
    uv_stream_t *server = r->refuse_waiting;
    if (server) {
        r->refuse_waiting = NULL;
        refuse(r, server);
    }
}

/* Out of memory: accept the connection into the router's spare handle and
 * close it at once (libuv stops accepting until uv_accept is called), logged
 * once per episode. While the spare is closing, the next refusal waits. */
static void refuse(sni_router *r, uv_stream_t *server)
{
    if (r->accept_error != UV_ENOMEM)
        log_msg(LOG_LEVEL_ERROR, 0, NULL, "out of memory accepting a connection");
    r->accept_error = UV_ENOMEM;
    if (r->spare_busy) {
        r->refuse_waiting = server;
        return;
    }
    uv_tcp_init(r->loop, &r->spare);
    r->spare.data = r;
    r->spare_busy = 1;
    uv_accept(server, (uv_stream_t *)&r->spare);
    uv_close((uv_handle_t *)&r->spare, on_refused_closed);
}

static void on_accept(uv_stream_t *server, int status)
{
    sni_router *r = server->data;
    if (status < 0) {
        if (status != r->accept_error)
            log_msg(LOG_LEVEL_ERROR, 0, NULL, "accept: %s", uv_strerror(status));
        r->accept_error = status;
        return;
    }
    /* Through the library's allocator hook, so its counters see these too. */
    sni_conn *c = bh_malloc(sizeof *c);
    sni_phase *ph = c ? bh_malloc(sizeof *ph) : NULL;
    if (!ph) {
        bh_free(c);
        refuse(r, server);
        return;
    }
    memset(c, 0, sizeof *c);
    memset(ph, 0, sizeof *ph);
    c->r = r;
    c->ph = ph;
    uv_tcp_init(r->loop, &c->client);
    uv_timer_init(r->loop, &ph->timer);
    ph->timer.data = c;
    c->handles = 2;
    c->client_owned = 1;
    c->next = r->live;
    if (r->live)
        r->live->prev = c;
    r->live = c;
    r->live_count++;
    idle_trim_busy(&r->trim);
    if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
        sni_conn_close(c);
        return;
    }
    r->accept_error = 0;
    r->accepted++;
    c->id = r->next_id;
    r->next_id += (uint64_t)r->cfg->workers;
    /* The peer's address serves the log lines only: --quiet skips asking. */
    int len = (int)sizeof c->peer;
    if (r->cfg->quiet || uv_tcp_getpeername(&c->client, &c->peer.sa, &len) != 0)
        c->peer.sa.sa_family = AF_UNSPEC;
    uv_tcp_nodelay(&c->client, 1);
    sni_hello_init(&c->ph->hello, r->cfg->max_hello);
    size_t reserve = r->cfg->max_hello < HELLO_READ_RESERVE ? r->cfg->max_hello
                                                             : HELLO_READ_RESERVE;
    if (bh_buf_init(&c->ph->buf, r->cfg->max_hello) != 0 ||
        bh_reader_init(&c->ph->reader, (uv_stream_t *)&c->client, &c->ph->buf, reserve,
                       sni_on_client_read, c) != 0 ||
        bh_reader_start(&c->ph->reader) != 0) {
        sni_conn_close(c);
        return;
    }
    uv_timer_start(&c->ph->timer, on_hello_timeout, r->cfg->hello_timeout_ms, 0);
}

/* ---- router ----------------------------------------------------------------------- */

int sni_router_start(sni_router *r, uv_loop_t *loop, const sni_config *cfg, sni_table *table,
                     worker *w)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->cfg = cfg;
    r->table = table;
    r->next_id = (uint64_t)workers_index(w) + 1;
    (void)idle_trim_init(&r->trim, loop, SNI_TRIM_AFTER_IDLE_MS); /* cannot fail */
    for (size_t i = 0; i < cfg->listen_count; i++) {
        uv_tcp_t *l = &r->listeners[i];
        uv_tcp_init(loop, l);
        r->listener_count++;
        l->data = r;
        int rc = workers_listen(w, l, (const struct sockaddr *)&cfg->listen_addr[i], 1024,
                                on_accept);
        if (rc != 0) {
            fprintf(stderr, "%s: cannot listen on %s: %s\n", cli_prog(), cfg->listen[i],
                    uv_strerror(rc));
            return rc;
        }
    }
    return 0;
}

void sni_router_drain(sni_router *r, int abort)
{
    for (size_t i = 0; i < r->listener_count; i++)
        if (!uv_is_closing((uv_handle_t *)&r->listeners[i]))
            uv_close((uv_handle_t *)&r->listeners[i], NULL);
    r->draining = 1;
    if (!abort)
        return;
    for (sni_conn *c = r->live; c; c = c->next) {
        if (c->tunnel_running)
            bh_tunnel_abort(&c->tunnel);
        else if (c->state != ST_REJECTING)
            sni_conn_close(c);
    }
}

void sni_router_live_bytes(const sni_router *r, const sni_route *route, uint64_t *up,
                           uint64_t *down)
{
    for (const sni_conn *c = r->live; c; c = c->next) {
        if (c->route != route || !c->tunnel_running)
            continue;
        struct bh_tunnel_stats st;
        bh_tunnel_stats(&c->tunnel, &st);
        *up += st.bytes[0];
        *down += st.bytes[1];
    }
}

void sni_router_live_backpressure(const sni_router *r, uint64_t waits[2], uint64_t ms[2])
{
    for (const sni_conn *c = r->live; c; c = c->next) {
        if (!c->tunnel_running)
            continue;
        struct bh_tunnel_stats st;
        bh_tunnel_stats(&c->tunnel, &st);
        for (int d = 0; d < 2; d++) {
            waits[d] += st.backpressure[d];
            ms[d] += st.backpressure_ms[d];
        }
    }
}
