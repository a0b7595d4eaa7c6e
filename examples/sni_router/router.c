/* router.c - sni_router's connections: accept, read the ClientHello into a
 * bh_buf without consuming it, route by its server name, connect the backend
 * and hand both sockets and the buffered bytes to a bh_tunnel.
 *
 * A connection moves HELLO -> CONNECTING -> TUNNEL, or to REJECTING: a TLS
 * alert (when one makes sense) is written, the write side shut down, and the
 * client's further input discarded until its EOF, at most DISCARD_MAX bytes
 * or one more --hello-timeout, so the close does not turn into an RST that
 * could overtake the alert. One uv_timer per connection bounds the hello and
 * then the backend connect; it is closed when the tunnel starts. The
 * connection is freed when the tunnel has called back (it closes client and
 * backend itself) or, without a tunnel, when every handle is closed. */
#include "sni_router.h"

#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DISCARD_MAX (64 * 1024)
#define HELLO_READ_RESERVE 4096

enum { ST_HELLO, ST_CONNECTING, ST_TUNNEL, ST_REJECTING };

/* What only the hello phase needs; freed when the tunnel starts (from the
 * timer's close callback), so an idle routed connection costs sni_conn only. */
typedef struct sni_phase {
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t alert_req;
    uv_shutdown_t shutdown_req;
    bh_buf buf;
    bh_reader reader;
    sni_hello hello;
    size_t discarded;
} sni_phase;

struct sni_conn {
    sni_router *r;
    sni_conn *prev, *next;
    int state;
    int handles;         /* handles of ours still open (client, timer, backend) */
    int tunnel_running;  /* bh_tunnel_start succeeded and done_cb has not run */
    int backend_init;
    int client_owned;    /* client is ours to close (not handed to the tunnel) */
    sni_route *route;
    sni_phase *ph;       /* NULL once the tunnel runs */
    uv_tcp_t client;
    uv_tcp_t backend;
    bh_tunnel tunnel;
};
/* Fatal alert records (RFC 8446 section 6): type 21, version 3.3, length 2,
 * level 2 (fatal), description. */
#define ALERT(desc) {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, (desc)}
static const uint8_t alert_decode_error[] = ALERT(50);
static const uint8_t alert_illegal_parameter[] = ALERT(47);
static const uint8_t alert_missing_extension[] = ALERT(109);
static const uint8_t alert_unrecognized_name[] = ALERT(112);
static const uint8_t alert_internal_error[] = ALERT(80);

static const uint8_t *alert_for(sni_kind k)
{
    switch (k) {
    case SNI_MALFORMED: return alert_decode_error;
    case SNI_TOO_LARGE:
    case SNI_BAD_NAME: return alert_illegal_parameter;
    case SNI_NO_SNI: return alert_missing_extension;
    case SNI_UNKNOWN_NAME: return alert_unrecognized_name;
    case SNI_BACKEND_FAILED: return alert_internal_error;
    default: return NULL;
    }
}

const char *sni_kind_name(sni_kind k)
{
    static const char *const names[SNI_KIND_COUNT] = {
        "not_tls", "sslv2", "malformed", "too_large", "bad_name", "no_sni",
        "unknown_name", "hello_timeout", "client_gone", "backend_failed"};
    return k < SNI_KIND_COUNT ? names[k] : "unknown";
}

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
    /* The last connection is gone: give cached blocks and free heap back. */
    if (r->live_count == 0)
        bh_trim();
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

/* Closes whatever of ours is still open (never the tunnel's sockets). */
static void conn_close(sni_conn *c)
{
    if (c->ph)
        close_handle(c, (uv_handle_t *)&c->ph->timer);
    if (c->client_owned)
        close_handle(c, (uv_handle_t *)&c->client);
    if (c->backend_init)
        close_handle(c, (uv_handle_t *)&c->backend);
}

static void log_conn(const sni_conn *c, const char *what)
{
    if (c->r->cfg->quiet)
        return;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    const sni_hello *h = &c->ph->hello;
    fprintf(stderr, "sni_router: %s:%d %s sni=%s alpn=%s\n", ip, port, what,
            h->has_sni ? h->sni : "-", h->alpn[0] ? h->alpn : "-");
}

/* ---- rejection --------------------------------------------------------------- */

static void on_discard_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_alert_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    (void)req;
}

static void on_alert_written(uv_write_t *req, int status)
{
    sni_conn *c = req->data;
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->client)) {
        conn_close(c);
        return;
    }
    c->ph->shutdown_req.data = c;
    if (uv_shutdown(&c->ph->shutdown_req, (uv_stream_t *)&c->client, on_alert_shutdown) != 0)
        conn_close(c);
}

/* Counts and logs kind k once, answers with its alert, then waits for the
 * client's EOF while discarding its input (see the file comment). */
static void reject(sni_conn *c, sni_kind k)
{
    sni_router *r = c->r;
    r->kinds[k]++;
    log_conn(c, sni_kind_name(k));
    c->state = ST_REJECTING;
    bh_buf_advance(&c->ph->buf, bh_buf_len(&c->ph->buf));
    uv_timer_start(&c->ph->timer, on_discard_timeout, r->cfg->hello_timeout_ms, 0);
    const uint8_t *alert = alert_for(k);
    if (k == SNI_CLIENT_GONE || k == SNI_HELLO_TIMEOUT) {
        conn_close(c);
        return;
    }
    if (!alert) {
        c->ph->shutdown_req.data = c;
        if (uv_shutdown(&c->ph->shutdown_req, (uv_stream_t *)&c->client, on_alert_shutdown) != 0)
            conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)alert, 7);
    c->ph->alert_req.data = c;
    if (uv_write(&c->ph->alert_req, (uv_stream_t *)&c->client, &b, 1, on_alert_written) != 0)
        conn_close(c);
}

/* ---- tunnel --------------------------------------------------------------------- */

static void on_tunnel_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    (void)t;
    sni_conn *c = ctx;
    sni_router *r = c->r;
    c->route->stats.bytes_up += st->bytes[0];
    c->route->stats.bytes_down += st->bytes[1];
    if (status == 0)
        r->tunnel_clean++;
    else if (status == UV_ETIMEDOUT)
        r->tunnel_idle++;
    else if (status == UV_ECONNRESET || status == BH_ECANCELED)
        r->tunnel_reset++;
    else
        r->tunnel_other++;
    if (status != 0 && !r->cfg->quiet)
        fprintf(stderr, "sni_router: tunnel of route %s ended: %s (%" PRIu64 " bytes up, %" PRIu64
                        " down)\n", c->route->name, bh_err_name(status),
                st->bytes[0], st->bytes[1]);
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
        reject(c, SNI_BACKEND_FAILED);
        return;
    }
    uv_tcp_nodelay(&c->backend, 1);
    bh_tunnel_config cfg = bh_tunnel_config_default();
    cfg.idle_timeout_ms = r->cfg->idle_timeout_ms;
    cfg.read_reserve = r->cfg->read_reserve;
    bh_reader_stop(&c->ph->reader); /* same loop iteration as the tunnel's start */
    int rc = bh_tunnel_start(&c->tunnel, r->loop, (uv_stream_t *)&c->client,
                             (uv_stream_t *)&c->backend, &c->ph->buf, NULL, &cfg, on_tunnel_done, c);
    if (rc != 0) {
        fprintf(stderr, "sni_router: tunnel start failed: %s\n", bh_strerror(rc));
        c->route->stats.failed++;
        reject(c, SNI_BACKEND_FAILED);
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
    reject(c, SNI_BACKEND_FAILED);
}

static void route(sni_conn *c)
{
    sni_router *r = c->r;
    const sni_hello *h = &c->ph->hello;
    sni_route *to = h->has_sni ? sni_table_lookup(r->table, h->sni, h) : r->table->fallback;
    if (!to) {
        reject(c, h->has_sni ? SNI_UNKNOWN_NAME : SNI_NO_SNI);
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
        reject(c, SNI_BACKEND_FAILED);
        return;
    }
    c->backend_init = 1;
    c->handles++;
    c->ph->connect.data = c;
    if (uv_tcp_connect(&c->ph->connect, &c->backend, (const struct sockaddr *)&to->addr,
                       on_backend_connected) != 0) {
        to->stats.failed++;
        reject(c, SNI_BACKEND_FAILED);
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

static void on_client_read(bh_reader *rd, int status, void *ctx)
{
    (void)rd;
    sni_conn *c = ctx;
    if (c->state == ST_REJECTING) {
        c->ph->discarded += bh_buf_len(&c->ph->buf);
        bh_buf_advance(&c->ph->buf, bh_buf_len(&c->ph->buf));
        if (status != BH_OK || c->ph->discarded > DISCARD_MAX)
            conn_close(c);
        return;
    }
    if (c->state == ST_CONNECTING) {
        /* Bytes after the hello stay buffered for the tunnel; a full buffer
         * just stops the reader until the tunnel reads instead. */
        if (status != BH_OK && status != BH_ETOOLONG)
            reject(c, SNI_CLIENT_GONE);
        return;
    }
    if (status == BH_ETOOLONG) {
        reject(c, SNI_TOO_LARGE);
        return;
    }
    if (status != BH_OK) {
        reject(c, SNI_CLIENT_GONE);
        return;
    }
    int rc = sni_hello_parse(&c->ph->hello, bh_buf_data(&c->ph->buf), bh_buf_len(&c->ph->buf));
    if (rc == SNI_HELLO_MORE)
        return;
    if (rc == SNI_HELLO_DONE)
        route(c);
    else
        reject(c, kind_of(rc));
}

static void on_hello_timeout(uv_timer_t *t)
{
    reject(t->data, SNI_HELLO_TIMEOUT);
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
        fprintf(stderr, "sni_router: out of memory accepting a connection\n");
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
            fprintf(stderr, "sni_router: accept: %s\n", uv_strerror(status));
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
    if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
        conn_close(c);
        return;
    }
    r->accept_error = 0;
    r->accepted++;
    uv_tcp_nodelay(&c->client, 1);
    sni_hello_init(&c->ph->hello, r->cfg->max_hello);
    size_t reserve = r->cfg->max_hello < HELLO_READ_RESERVE ? r->cfg->max_hello
                                                             : HELLO_READ_RESERVE;
    if (bh_buf_init(&c->ph->buf, r->cfg->max_hello) != 0 ||
        bh_reader_init(&c->ph->reader, (uv_stream_t *)&c->client, &c->ph->buf, reserve,
                       on_client_read, c) != 0 ||
        bh_reader_start(&c->ph->reader) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->ph->timer, on_hello_timeout, r->cfg->hello_timeout_ms, 0);
}

/* ---- router ----------------------------------------------------------------------- */

int sni_router_start(sni_router *r, uv_loop_t *loop, const sni_config *cfg, sni_table *table)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->cfg = cfg;
    r->table = table;
    for (size_t i = 0; i < cfg->listen_count; i++) {
        struct sockaddr_storage addr;
        int rc = cli_parse_addr(cfg->listen[i], &addr);
        uv_tcp_t *l = &r->listeners[i];
        if (rc == 0) {
            uv_tcp_init(loop, l);
            r->listener_count++;
            l->data = r;
            rc = uv_tcp_bind(l, (const struct sockaddr *)&addr, 0);
        }
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)l, 1024, on_accept);
        if (rc != 0) {
            fprintf(stderr, "sni_router: cannot listen on %s: %s\n", cfg->listen[i],
                    uv_strerror(rc));
            return rc;
        }
        struct sockaddr_storage ss;
        int len = (int)sizeof ss;
        uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
        int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        printf("listening %d\n", port);
    }
    fflush(stdout);
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
            conn_close(c);
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
