/* demo.c - `content_routing demo`: sinks, the proxy and N clients on one
 * libuv loop over 127.0.0.1 (ephemeral ports), with end-to-end verification.
 *
 * Each client builds its whole stream up front (ROUTE line, payload frames of
 * pseudo-random binary bytes, TUNNEL marker, pseudo-random tunnel bytes) and
 * its FNV-1a 64 hash, then writes it in --write-size pieces with TCP_NODELAY,
 * one uv_write at a time (the next piece leaves from the previous write's
 * callback, one loop iteration later), so the proxy really reads fragments.
 * A good client half-closes and expects the sink's reply, forwarded by the
 * proxy: "OK <nbytes> <hash>\n". The demo then pairs every good client with
 * one record of its destination's sink (bytes, hash, frames, tunnel bytes,
 * ROUTE name) - a byte lost, duplicated, reordered or misrouted fails.
 *
 * Faulty clients (the last ones): mid-frame closes (FIN) in the middle of a
 * payload frame, mid-tunnel resets (RST) in the middle of the tunnel,
 * bad-route names an unknown destination, long-header sends a header line
 * longer than --max-line, long-frame declares a frame above --max-frame. The
 * last three must receive exactly their ERR line and EOF; the proxy must end
 * every faulty session (aborted or rejected) and keep serving the others.
 *
 * When every client is done the demo waits for the proxy and sinks to free
 * their sessions, checks the counters, closes every handle and lets the loop
 * end, so uv_loop_close() succeeds and nothing leaks. Every completion
 * callback the proxy and the sinks register (shutdowns, ERR-line and reply
 * tickets) must have run exactly once.
 *
 * Allocation failures (--fail-alloc N, for the allocation-failure sweep):
 * the demo installs a counting allocator through bh_set_allocator() that
 * fails the Nth library allocation. The connection that hits it must end
 * cleanly: the component that saw BH_ENOMEM logs it and closes that
 * connection, the others complete and verify. A client may then fail only
 * without having received a wrong byte (its reply is absent or a prefix of
 * the expected one), no more clients may fail than BH_ENOMEM reports, no
 * library block may be live at the end and every ticket must have completed
 * once; the demo then exits with CR_DEMO_FAILED_CLEANLY instead of 0.
 *
 * Soak (--duration-s S with --proxy): each good client reconnects and sends
 * its stream again after every verified reply, until S seconds after every
 * client had its first verified reply (the ramp, announced on stdout). */
#include "rig.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEMO_DESTS 4
#define QUIESCE_MS 5000

/* ---- counting / failing allocator (--fail-alloc, --count-allocs) ---------- */

static struct {
    size_t attempts; /* malloc + realloc calls */
    size_t fail_at;  /* attempt to fail (1-based), 0 = none */
    size_t failed;   /* failures injected */
    size_t live;     /* blocks allocated and not yet freed */
    size_t failed_size;
    const char *failed_fn;
} g_fa;

static int fa_fail(size_t size, const char *fn)
{
    if (++g_fa.attempts != g_fa.fail_at)
        return 0;
    g_fa.failed++;
    g_fa.failed_size = size;
    g_fa.failed_fn = fn;
    return 1;
}

static void *fa_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (fa_fail(size, "malloc"))
        return NULL;
    void *p = malloc(size);
    if (p)
        g_fa.live++;
    return p;
}

static void *fa_realloc(void *ctx, void *old, size_t size)
{
    (void)ctx;
    if (fa_fail(size, "realloc"))
        return NULL;
    void *p = realloc(old, size);
    if (p && !old)
        g_fa.live++;
    return p;
}

static void fa_free(void *ctx, void *p)
{
    (void)ctx;
    if (p)
        g_fa.live--;
    free(p);
}

static const char *const dest_names[MAX_DEMO_DESTS] = {"alpha", "beta", "gamma", "delta"};

enum client_kind {
    CK_GOOD,
    CK_MID_FRAME,
    CK_MID_TUNNEL,
    CK_BAD_ROUTE,
    CK_LONG_HEADER,
    CK_LONG_FRAME
};

static const char *const kind_names[] = {"good",      "mid-frame",   "mid-tunnel",
                                         "bad-route", "long-header", "long-frame"};

typedef struct demo demo;

typedef struct client {
    demo *d;
    size_t id;
    enum client_kind kind;
    size_t dest;
    uint8_t *stream; /* everything this client would send */
    size_t len;
    size_t stop_at; /* bytes sent before the fault (len for the others) */
    size_t sent, inflight;
    uint64_t expect_frames, expect_tunnel, expect_hash;
    char expect_reply[96];
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    bh_buf reply;
    bh_reader reader;
    int closing, done;
    int reply_ok, sink_ok;
    int wrong;     /* received bytes that are not (a prefix of) the expected reply */
    int enomem;    /* its own reply reader ran out of memory */
    size_t rounds; /* verified replies (several with --duration-s) */
    const char *failure;
} client;

struct demo {
    const cr_demo_config *cfg;
    uv_loop_t loop;
    size_t ndests;
    cr_sink *sinks[MAX_DEMO_DESTS];
    cr_proxy *proxy;
    struct sockaddr_storage proxy_addr;
    client *clients;
    size_t nclients, ndone;
    uv_timer_t watchdog, quiesce;
    uint64_t t_start, t_end, quiesce_until;
    uint64_t deadline; /* --duration-s: no reconnect after this (uv_now), set at ramp end */
    int timed_out, finished;
    int ramp_done; /* --duration-s: every good client has a verified reply */
    int fa_installed; /* the counting allocator is in place */
    struct cr_proxy_stats pst;
};

void cr_demo_config_default(cr_demo_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->conns = 8;
    cfg->frames = 64;
    cfg->frame_bytes = 63;
    cfg->tunnel_bytes = (size_t)1 << 20;
    cfg->write_size = 1024;
    cfg->seed = 1;
    cfg->timeout_ms = 60000;
    cr_proxy_config_default(&cfg->proxy);
}

/* ---- building client streams --------------------------------------------- */

typedef struct vec {
    uint8_t *p;
    size_t len, cap;
    int oom;
} vec;

static void vec_put(vec *v, const void *p, size_t n)
{
    if (v->oom)
        return;
    if (v->len + n > v->cap) {
        size_t cap = v->cap ? v->cap : 256;
        while (cap < v->len + n)
            cap *= 2;
        uint8_t *q = realloc(v->p, cap);
        if (!q) {
            v->oom = 1;
            return;
        }
        v->p = q;
        v->cap = cap;
    }
    memcpy(v->p + v->len, p, n);
    v->len += n;
}

static void vec_puts(vec *v, const char *s) { vec_put(v, s, strlen(s)); }

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void vec_random(vec *v, uint64_t *rng, size_t n)
{
    uint8_t chunk[4096];
    while (n > 0) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        for (size_t i = 0; i < k; i += 8) {
            uint64_t r = rng_next(rng);
            for (size_t j = 0; j < 8 && i + j < k; j++)
                chunk[i + j] = (uint8_t)(r >> (8 * j));
        }
        vec_put(v, chunk, k);
        n -= k;
    }
}

static void vec_frame(vec *v, uint64_t *rng, size_t n)
{
    char hdr[32];
    snprintf(hdr, sizeof hdr, "%zu\n", n);
    vec_puts(v, hdr);
    vec_random(v, rng, n);
}

/* Builds the client's stream, where it stops and what it expects back. */
static int client_build(client *c, const cr_demo_config *cfg)
{
    vec v = {0};
    char line[CR_MAX_NAME + 16];
    uint64_t rng = cfg->seed * UINT64_C(0x9e3779b97f4a7c15) + c->id + 1;
    if (rng == 0)
        rng = 1;
    const char *dest = dest_names[c->dest];
    size_t frame_mid = 0, tunnel_at = 0;

    switch (c->kind) {
    case CK_GOOD:
    case CK_MID_FRAME:
    case CK_MID_TUNNEL:
        snprintf(line, sizeof line, "ROUTE %s\n", dest);
        vec_puts(&v, line);
        frame_mid = v.len + 1; /* inside the ROUTE line when there are no frames */
        for (size_t i = 0; i < cfg->frames; i++) {
            if (i == cfg->frames / 2) { /* inside the header, or half-way into the payload */
                int hdr = snprintf(NULL, 0, "%zu\n", cfg->frame_bytes);
                frame_mid = v.len + (cfg->frame_bytes < 2 ? 1 : (size_t)hdr + cfg->frame_bytes / 2);
            }
            vec_frame(&v, &rng, cfg->frame_bytes);
        }
        vec_puts(&v, "TUNNEL\n");
        tunnel_at = v.len;
        vec_random(&v, &rng, cfg->tunnel_bytes);
        c->expect_frames = cfg->frames;
        c->expect_tunnel = cfg->tunnel_bytes;
        break;
    case CK_BAD_ROUTE:
        snprintf(line, sizeof line, "ROUTE nowhere%zu\n", c->id);
        vec_puts(&v, line);
        for (size_t i = 0; i < 4 && i < cfg->frames; i++)
            vec_frame(&v, &rng, cfg->frame_bytes);
        snprintf(c->expect_reply, sizeof c->expect_reply, "ERR unknown destination nowhere%zu\n",
                 c->id);
        break;
    case CK_LONG_HEADER:
        snprintf(line, sizeof line, "ROUTE %s\n", dest);
        vec_puts(&v, line);
        vec_frame(&v, &rng, cfg->frame_bytes);
        vec_frame(&v, &rng, cfg->frame_bytes);
        for (size_t i = 0; i < cfg->proxy.max_line + 64; i++)
            vec_put(&v, "7", 1);
        vec_puts(&v, "\n");
        snprintf(c->expect_reply, sizeof c->expect_reply, "ERR header too long\n");
        break;
    case CK_LONG_FRAME:
        snprintf(line, sizeof line, "ROUTE %s\n", dest);
        vec_puts(&v, line);
        vec_frame(&v, &rng, cfg->frame_bytes);
        snprintf(line, sizeof line, "%zu\n", cfg->proxy.max_frame + 1);
        vec_puts(&v, line);
        vec_random(&v, &rng, 64);
        snprintf(c->expect_reply, sizeof c->expect_reply, "ERR frame too long\n");
        break;
    }
    if (v.oom) {
        free(v.p);
        return -1;
    }
    c->stream = v.p;
    c->len = v.len;
    c->stop_at = v.len;
    if (c->kind == CK_MID_FRAME)
        c->stop_at = frame_mid < v.len ? frame_mid : v.len;
    if (c->kind == CK_MID_TUNNEL)
        c->stop_at = tunnel_at + cfg->tunnel_bytes / 2;
    if (c->kind == CK_GOOD) {
        c->expect_hash = fnv1a64(FNV1A64_OFFSET, c->stream, c->len);
        snprintf(c->expect_reply, sizeof c->expect_reply, "OK %zu %016" PRIx64 "\n", c->len,
                 c->expect_hash);
    }
    return 0;
}

/* ---- client I/O -----------------------------------------------------------
 */

static void demo_client_done(demo *d);
static int client_start(client *c);

/* --duration-s: a good client whose reply verified connects again. */
static int client_again(client *c)
{
    demo *d = c->d;
    if (c->kind != CK_GOOD || !d->cfg->duration_s || !c->reply_ok || c->failure || d->finished ||
        uv_now(&d->loop) >= d->deadline)
        return 0;
    c->sent = c->inflight = 0;
    c->closing = 0;
    c->reply_ok = 0;
    if (client_start(c) != 0) {
        c->failure = "reconnect failed";
        return 0;
    }
    return 1;
}

static void on_client_closed(uv_handle_t *h)
{
    client *c = (client *)(void *)((char *)h - offsetof(client, tcp));
    bh_buf_free(&c->reply);
    if (client_again(c))
        return;
    c->done = 1;
    demo_client_done(c->d);
}

/* reset: RST instead of FIN (the mid-tunnel fault). */
static void client_close(client *c, int reset, const char *failure)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (failure && !c->failure)
        c->failure = failure;
    bh_reader_stop(&c->reader);
    if (reset && uv_tcp_close_reset(&c->tcp, on_client_closed) == 0)
        return;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static int faulty_disconnect(const client *c)
{
    return c->kind == CK_MID_FRAME || c->kind == CK_MID_TUNNEL;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    client *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        client_close(c, 0, "shutdown failed");
}

static void write_next(client *c);

static void on_write(uv_write_t *req, int status)
{
    client *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        /* A rejected client may see its unread input reset the connection
         * only after the ERR line; its reply decides. */
        if (c->kind == CK_GOOD || faulty_disconnect(c))
            client_close(c, 0, "write failed");
        return;
    }
    c->sent += c->inflight;
    c->inflight = 0;
    write_next(c);
}

static void write_next(client *c)
{
    if (c->sent < c->stop_at) {
        size_t n = c->stop_at - c->sent;
        if (n > c->d->cfg->write_size)
            n = c->d->cfg->write_size;
        uv_buf_t b = uv_buf_init((char *)c->stream + c->sent, (unsigned)n);
        c->inflight = n;
        c->wreq.data = c;
        int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc != 0)
            client_close(c, 0, "write refused");
        return;
    }
    switch (c->kind) {
    case CK_MID_FRAME:
        client_close(c, 0, NULL);
        break;
    case CK_MID_TUNNEL:
        client_close(c, 1, NULL);
        break;
    default:
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
            client_close(c, 0, "shutdown refused");
        break;
    }
}

/* Flags a reply that is not a prefix of the expected one: bytes went wrong
 * somewhere, which no fault (not even an allocation failure) may cause. A
 * faulty-disconnect client expects nothing. */
static void check_reply_bytes(client *c)
{
    size_t n = bh_buf_len(&c->reply);
    size_t want = faulty_disconnect(c) ? 0 : strlen(c->expect_reply);
    if (n > want || (n > 0 && memcmp(bh_buf_data(&c->reply), c->expect_reply, n) != 0))
        c->wrong = 1;
}

/* --duration-s: says once, on stdout, when every good client has a verified
 * reply, so a soak driver can tell the ramp from the steady state. */
static void note_ramp(demo *d)
{
    if (!d->cfg->duration_s || d->ramp_done)
        return;
    for (size_t i = 0; i < d->nclients; i++)
        if (d->clients[i].kind == CK_GOOD && d->clients[i].rounds == 0)
            return;
    d->ramp_done = 1;
    d->deadline = uv_now(&d->loop) + (uint64_t)d->cfg->duration_s * 1000;
    printf("ramp: every client has a verified reply after %.3f s\n",
           (double)(uv_hrtime() - d->t_start) / 1e9);
    fflush(stdout);
}

static void on_reply(bh_reader *r, int status, void *ctx)
{
    client *c = ctx;
    (void)r;
    if (status == BH_OK)
        return; /* keep accumulating; the buffer's max_len bounds it */
    check_reply_bytes(c);
    if (status != UV_EOF) {
        if (status == BH_ENOMEM) {
            c->enomem = 1;
            fprintf(stderr, "client %zu: reply read: %s (%s); closing the connection\n", c->id,
                    bh_err_name(status), bh_strerror(status));
        }
        if (status == BH_ETOOLONG)
            c->wrong = 1;
        if (!faulty_disconnect(c))
            client_close(c, 0, status == BH_ETOOLONG ? "reply too long" : "reply read error");
        else
            client_close(c, 0, NULL);
        return;
    }
    size_t n = bh_buf_len(&c->reply);
    if (!faulty_disconnect(c) && n == strlen(c->expect_reply) &&
        memcmp(bh_buf_data(&c->reply), c->expect_reply, n) == 0) {
        c->reply_ok = 1;
        if (++c->rounds == 1)
            note_ramp(c->d);
    }
    client_close(c, 0, c->reply_ok || faulty_disconnect(c) ? NULL : "unexpected reply");
}

static void on_connected(uv_connect_t *req, int status)
{
    client *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        client_close(c, 0, "connect failed");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (bh_reader_start(&c->reader) != BH_OK) {
        client_close(c, 0, "read start failed");
        return;
    }
    write_next(c);
}

static int client_start(client *c)
{
    demo *d = c->d;
    int rc = uv_tcp_init(&d->loop, &c->tcp);
    if (rc != 0)
        return rc;
    bh_buf_init(&c->reply, 256);
    bh_reader_init(&c->reader, (uv_stream_t *)&c->tcp, &c->reply, 256, on_reply, c);
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&d->proxy_addr, on_connected);
    if (rc != 0)
        client_close(c, 0, "connect refused");
    return 0;
}

/* ---- orchestration --------------------------------------------------------
 */

static void on_timer_closed(uv_handle_t *h) { (void)h; }

/* Stops every component; the loop ends once their handles are closed. */
static void demo_stop(demo *d)
{
    if (d->finished)
        return;
    d->finished = 1;
    if (d->proxy)
        cr_proxy_get_stats(d->proxy, &d->pst);
    for (size_t i = 0; i < d->nclients; i++)
        if (d->clients[i].tcp.type == UV_TCP)
            client_close(&d->clients[i], 0, "stopped");
    if (d->proxy)
        cr_proxy_stop(d->proxy);
    for (size_t i = 0; i < d->ndests; i++)
        if (d->sinks[i])
            cr_sink_stop(d->sinks[i]);
    uv_close((uv_handle_t *)&d->watchdog, on_timer_closed);
    uv_close((uv_handle_t *)&d->quiesce, on_timer_closed);
}

static void on_quiesce(uv_timer_t *t)
{
    demo *d = t->data;
    int idle = 1;
    if (d->proxy) {
        struct cr_proxy_stats st;
        cr_proxy_get_stats(d->proxy, &st);
        if (st.live > 0)
            idle = 0;
    }
    for (size_t i = 0; i < d->ndests; i++)
        if (d->sinks[i] && cr_sink_live(d->sinks[i]) > 0)
            idle = 0;
    if (idle || uv_now(&d->loop) >= d->quiesce_until)
        demo_stop(d);
}

static void demo_client_done(demo *d)
{
    if (++d->ndone < d->nclients || d->finished)
        return;
    d->t_end = uv_hrtime();
    d->quiesce_until = uv_now(&d->loop) + QUIESCE_MS;
    uv_timer_start(&d->quiesce, on_quiesce, 1, 2);
}

static void on_watchdog(uv_timer_t *t)
{
    demo *d = t->data;
    d->timed_out = 1;
    fprintf(stderr, "demo: timed out after %u ms with %zu of %zu clients done\n",
            d->cfg->timeout_ms, d->ndone, d->nclients);
    for (size_t i = 0; i < d->nclients; i++) {
        client *c = &d->clients[i];
        if (!c->closing)
            fprintf(stderr, "  client %zu (%s): sent %zu of %zu bytes, reply %zu bytes\n", c->id,
                    kind_names[c->kind], c->sent, c->stop_at, bh_buf_len(&c->reply));
    }
    demo_stop(d);
}

/* ---- verification and summary -------------------------------------------- */

/* Pairs a good client with one unmatched record of its destination's sink. */
static int match_sink(demo *d, client *c)
{
    size_t n;
    cr_sink_record *r = cr_sink_records(d->sinks[c->dest], &n);
    for (size_t i = 0; i < n; i++) {
        if (r[i].matched || r[i].bytes != c->len || r[i].hash != c->expect_hash)
            continue;
        if (r[i].frames != c->expect_frames || r[i].tunnel_bytes != c->expect_tunnel ||
            !r[i].route_ok || !r[i].parse_ok)
            continue;
        r[i].matched = 1;
        return 1;
    }
    return 0;
}

/* Sums what the proxy and the sinks report about out-of-memory endings and
 * completion tickets. */
static void collect(demo *d, uint64_t *enomem, cr_tickets *t)
{
    *enomem = d->pst.enomem;
    *t = d->pst.tickets;
    for (size_t i = 0; i < d->ndests && !d->cfg->external; i++) {
        cr_tickets st;
        cr_sink_tickets(d->sinks[i], &st);
        t->issued += st.issued;
        t->completed += st.completed;
        t->dupes += st.dupes;
        t->lost += st.lost;
        *enomem += cr_sink_enomem(d->sinks[i]);
    }
    for (size_t i = 0; i < d->nclients; i++)
        *enomem += (uint64_t)d->clients[i].enomem;
}

static int report(demo *d)
{
    const cr_demo_config *cfg = d->cfg;
    double secs = (double)(d->t_end > d->t_start ? d->t_end - d->t_start : 1) / 1e9;
    size_t count[6] = {0}, handled[6] = {0};
    uint64_t dconns[MAX_DEMO_DESTS] = {0}, dok[MAX_DEMO_DESTS] = {0};
    uint64_t dframes[MAX_DEMO_DESTS] = {0}, dbytes[MAX_DEMO_DESTS] = {0};
    int failed = d->timed_out;
    int injected = g_fa.failed > 0;
    uint64_t enomem;
    cr_tickets tk;
    collect(d, &enomem, &tk);
    size_t failed_clean = 0, wrong = 0;

    for (size_t i = 0; i < d->nclients; i++) {
        client *c = &d->clients[i];
        const char *why = NULL;
        char expected[128];
        expected[0] = '\0';
        count[c->kind]++;
        if (c->kind == CK_GOOD) {
            c->sink_ok = c->reply_ok && (cfg->external || match_sink(d, c));
            /* Earlier rounds (--duration-s) verified; the last one decides. */
            uint64_t before = c->rounds - (c->reply_ok ? 1 : 0);
            uint64_t ok = before + (c->sink_ok ? 1 : 0);
            dconns[c->dest] += before + 1;
            dok[c->dest] += ok;
            dframes[c->dest] += c->expect_frames * ok;
            dbytes[c->dest] += (uint64_t)c->len * ok;
            if (c->sink_ok)
                handled[c->kind]++;
            else
                why = c->failure     ? c->failure
                      : !c->reply_ok ? "reply missing or wrong"
                                     : "no matching stream at the sink";
        } else if (faulty_disconnect(c)) {
            if (c->done && !c->failure)
                handled[c->kind]++;
            else
                why = c->failure ? c->failure : "not done";
        } else {
            if (c->reply_ok) {
                handled[c->kind]++;
            } else {
                why = c->failure ? c->failure : "no ERR reply";
                snprintf(expected, sizeof expected, " (expected \"%.*s\\n\")",
                         (int)strlen(c->expect_reply) - 1, c->expect_reply);
            }
        }
        if (!why)
            continue;
        const char *dest = c->kind == CK_GOOD ? dest_names[c->dest] : NULL;
        if (c->wrong) {
            wrong++;
            failed = 1;
            fprintf(stderr, "client %zu (%s%s%s): WRONG BYTES in the reply: %s%s\n", c->id,
                    kind_names[c->kind], dest ? ", " : "", dest ? dest : "", why, expected);
        } else if (injected && enomem > 0) {
            failed_clean++;
            fprintf(stderr,
                    "client %zu (%s%s%s): connection failed after the injected allocation "
                    "failure: %s\n",
                    c->id, kind_names[c->kind], dest ? ", " : "", dest ? dest : "", why);
        } else {
            failed = 1;
            fprintf(stderr, "client %zu (%s%s%s): %s%s\n", c->id, kind_names[c->kind],
                    dest ? ", " : "", dest ? dest : "", why, expected);
        }
    }
    /* One failed allocation belongs to one connection's buffer or queue. */
    if (failed_clean > enomem) {
        failed = 1;
        fprintf(stderr, "demo: %zu connections failed but only %" PRIu64 " reported BH_ENOMEM\n",
                failed_clean, enomem);
    }
    if (enomem > 0 && !injected) {
        failed = 1;
        fprintf(stderr, "demo: BH_ENOMEM reported without an injected failure\n");
    }
    int tickets_ok = tk.issued == tk.completed && tk.dupes == 0 && tk.lost == 0;
    if (!tickets_ok)
        failed = 1;
    /* Blocks the readers gave back to this thread's cache are not leaks. */
    bh_thread_cache_trim();
    int alloc_ok = !d->fa_installed || g_fa.live == 0;
    if (!alloc_ok)
        failed = 1;

    size_t good = count[CK_GOOD];
    size_t rejected_expected = count[CK_BAD_ROUTE] + count[CK_LONG_HEADER] + count[CK_LONG_FRAME];
    size_t aborted_expected = count[CK_MID_FRAME] + count[CK_MID_TUNNEL];
    const struct cr_proxy_stats *ps = &d->pst;
    /* Sessions are counted as they are freed, after the quiesce wait. */
    int proxy_ok = ps->live == 0 && ps->accepted == d->nclients && ps->completed == good &&
                   ps->rejected == rejected_expected && ps->aborted == aborted_expected &&
                   ps->peak_queued <= cfg->proxy.write_budget;
    if (injected) /* the failed connections' sessions may have ended any way */
        proxy_ok = ps->live == 0 && ps->accepted == d->nclients &&
                   ps->completed + ps->rejected + ps->aborted == ps->accepted &&
                   ps->peak_queued <= cfg->proxy.write_budget;
    if (cfg->external)
        proxy_ok = 1;
    if (!proxy_ok)
        failed = 1;

    uint64_t sink_aborted = 0;
    size_t unmatched = 0;
    for (size_t i = 0; i < d->ndests && !cfg->external; i++) {
        size_t n;
        cr_sink_record *r = cr_sink_records(d->sinks[i], &n);
        for (size_t j = 0; j < n; j++) {
            if (r[j].matched)
                continue;
            unmatched++;
            if (cfg->proxy.verbose)
                fprintf(stderr,
                        "sink %s: stream not matched: %" PRIu64 " bytes, %" PRIu64
                        " frames, %" PRIu64 " tunnel bytes, route %s, %s\n",
                        dest_names[i], r[j].bytes, r[j].frames, r[j].tunnel_bytes,
                        r[j].route_ok ? "ok" : "wrong",
                        r[j].parse_ok ? "well formed" : "truncated");
        }
        sink_aborted += cr_sink_aborted(d->sinks[i]);
    }

    printf("content_routing demo: %zu connections (%zu good), %zu frames x %zu B "
           "+ %zu B tunnel "
           "each, write size %zu B, read reserve %zu B, write budget %zu B, seed "
           "%" PRIu64 "\n",
           d->nclients, good, cfg->frames, cfg->frame_bytes, cfg->tunnel_bytes, cfg->write_size,
           cfg->proxy.read_reserve, cfg->proxy.write_budget, cfg->seed);
    printf("\n%-8s %11s %9s %10s %14s %10s  %s\n", "dest", "connections", "verified", "frames",
           "bytes", "MiB/s", "checksum");
    uint64_t tconns = 0, tok = 0, tframes = 0, tbytes = 0;
    for (size_t i = 0; i < d->ndests; i++) {
        char ver[48];
        snprintf(ver, sizeof ver, "%" PRIu64 "/%" PRIu64, dok[i], dconns[i]);
        printf("%-8s %11" PRIu64 " %9s %10" PRIu64 " %14" PRIu64 " %10.1f  %s\n", dest_names[i],
               dconns[i], ver, dframes[i], dbytes[i], (double)dbytes[i] / (1024.0 * 1024.0) / secs,
               dok[i] == dconns[i] ? "OK" : "FAIL");
        tconns += dconns[i];
        tok += dok[i];
        tframes += dframes[i];
        tbytes += dbytes[i];
    }
    char ver[48];
    snprintf(ver, sizeof ver, "%" PRIu64 "/%" PRIu64, tok, tconns);
    printf("%-8s %11" PRIu64 " %9s %10" PRIu64 " %14" PRIu64 " %10.1f  %s\n\n", "total", tconns,
           ver, tframes, tbytes, (double)tbytes / (1024.0 * 1024.0) / secs,
           tok == tconns ? "OK" : "FAIL");
    if (cfg->duration_s)
        printf("soak:    %zu concurrent clients reconnecting for %u s: %" PRIu64
               " connections verified, %" PRIu64 " bytes, %.1f MiB/s\n",
               good, cfg->duration_s, tok, tbytes, (double)tbytes / (1024.0 * 1024.0) / secs);
    printf("faults:  mid-frame %zu/%zu, mid-tunnel %zu/%zu closed by the client; "
           "bad-route "
           "%zu/%zu, long-header %zu/%zu, long-frame %zu/%zu answered with ERR\n",
           handled[CK_MID_FRAME], count[CK_MID_FRAME], handled[CK_MID_TUNNEL], count[CK_MID_TUNNEL],
           handled[CK_BAD_ROUTE], count[CK_BAD_ROUTE], handled[CK_LONG_HEADER],
           count[CK_LONG_HEADER], handled[CK_LONG_FRAME], count[CK_LONG_FRAME]);
    if (cfg->external)
        printf("proxy:   external at port %d; verified through the forwarded sink "
               "replies\n",
               cli_addr_port(&d->proxy_addr));
    else
        printf("proxy:   sessions %" PRIu64 " accepted, %" PRIu64
               " completed (expected %zu), %" PRIu64 " rejected (expected %zu), %" PRIu64
               " aborted (expected %zu), %" PRIu64 " live; %" PRIu64 " frames routed, %" PRIu64
               " bytes up, %" PRIu64 " bytes down\n",
               ps->accepted, ps->completed, good, ps->rejected, rejected_expected, ps->aborted,
               aborted_expected, ps->live, ps->frames, ps->bytes_up, ps->bytes_down);
    if (!cfg->external) {
        printf("         backpressure: %" PRIu64 " read pauses on a full queue, peak %zu B queued "
               "on one upstream (budget %zu B)\n",
               ps->pauses, ps->peak_queued, cfg->proxy.write_budget);
        printf("sinks:   %" PRIu64 " upstream connections reset by the proxy, %zu streams not "
               "matched to a good client\n",
               sink_aborted, unmatched);
        printf("tickets: %" PRIu64 " issued, %" PRIu64 " completed once, %" PRIu64
               " completed twice, %" PRIu64 " never completed%s\n",
               tk.issued, tk.completed, tk.dupes, tk.lost, tickets_ok ? "" : "  FAIL");
    }
    if (d->fa_installed) {
        printf("alloc:   %zu library allocation attempts reached, %zu blocks live at exit%s\n",
               g_fa.attempts, g_fa.live, alloc_ok ? "" : "  FAIL (leak)");
        if (cfg->fail_alloc && injected)
            printf("alloc:   injected failure at attempt %zu (%s of %zu B); %" PRIu64
                   " BH_ENOMEM endings reported, %zu connections failed cleanly\n",
                   cfg->fail_alloc, g_fa.failed_fn, g_fa.failed_size, enomem, failed_clean);
        else if (cfg->fail_alloc)
            printf("alloc:   --fail-alloc %zu not reached\n", cfg->fail_alloc);
    }
    printf("elapsed: %.3f s\n", secs);
    int result = 0;
    if (failed) {
        printf("RESULT: FAILED%s%s\n", d->timed_out ? " (timeout)" : "",
               wrong ? " (wrong bytes)" : "");
        result = 1;
    } else if (failed_clean > 0) {
        printf("RESULT: failed cleanly: %zu connection(s) failed with BH_ENOMEM, every other "
               "connection verified, no wrong byte, no leak, every ticket completed once\n",
               failed_clean);
        result = CR_DEMO_FAILED_CLEANLY;
    } else {
        printf("RESULT: all checksums OK, all faults handled\n");
    }
    fflush(stdout);
    return result;
}

/* ---- entry ----------------------------------------------------------------
 */

/* Starts one sink per destination and the proxy routing to them. */
static int start_servers(demo *d, size_t ndests)
{
    const cr_demo_config *cfg = d->cfg;
    struct sockaddr_in any4;
    uv_ip4_addr("127.0.0.1", 0, &any4);
    const struct sockaddr *any = (const struct sockaddr *)&any4;
    cr_proxy_config pc = cfg->proxy;
    pc.ndests = 0;
    pc.default_dest = -1;
    for (size_t i = 0; i < ndests; i++) {
        cr_sink_config sc = {dest_names[i],    cfg->proxy.max_line, cfg->proxy.max_frame, 0,
                             cfg->sink_rcvbuf, cfg->sink_pause_ms};
        int port = 0;
        int rc = cr_sink_start(&d->sinks[i], &d->loop, &sc, any, &port);
        d->ndests = i + 1;
        if (rc != 0) {
            fprintf(stderr, "demo: sink %s: %s\n", dest_names[i], bh_strerror(rc));
            return rc;
        }
        snprintf(pc.dests[i].name, sizeof pc.dests[i].name, "%s", dest_names[i]);
        uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&pc.dests[i].addr);
        pc.ndests++;
    }
    int port = 0;
    int rc = cr_proxy_start(&d->proxy, &d->loop, &pc, any, &port);
    if (rc != 0) {
        fprintf(stderr, "demo: proxy: %s\n", bh_strerror(rc));
        return rc;
    }
    uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&d->proxy_addr);
    return 0;
}

static int setup(demo *d, size_t ndests)
{
    if (d->cfg->external) {
        d->ndests = ndests;
        d->proxy_addr = d->cfg->ext_proxy;
    } else {
        int rc = start_servers(d, ndests);
        if (rc != 0)
            return rc;
    }
    d->t_start = uv_hrtime();
    for (size_t i = 0; i < d->nclients; i++) {
        int rc = client_start(&d->clients[i]);
        if (rc != 0) {
            fprintf(stderr, "demo: client %zu: %s\n", i, bh_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int cr_demo_run(const cr_demo_config *cfg)
{
    size_t faults =
        cfg->mid_frame + cfg->mid_tunnel + cfg->bad_route + cfg->long_header + cfg->long_frame;
    if (faults > cfg->conns) {
        fprintf(stderr, "demo: %zu faulty clients but only %zu connections\n", faults, cfg->conns);
        return 2;
    }
    char why[200];
    cr_proxy_config check = cfg->proxy;
    check.ndests = 1;
    if (cr_proxy_config_check(&check, why, sizeof why) != 0) {
        fprintf(stderr, "demo: %s\n", why);
        return 2;
    }
    if (cfg->frame_bytes > cfg->proxy.max_frame) {
        fprintf(stderr, "demo: --frame-bytes above --max-frame\n");
        return 2;
    }
    if (cfg->duration_s && !cfg->external) {
        fprintf(stderr, "demo: --duration-s needs --proxy (sinks in other processes)\n");
        return 2;
    }

    demo *d = calloc(1, sizeof *d);
    if (!d)
        return 1;
    d->cfg = cfg;
    if (cfg->fail_alloc || cfg->count_allocs) {
        /* Before any library call: every block goes through this hook. */
        bh_allocator fa = {fa_malloc, fa_realloc, fa_free, NULL};
        memset(&g_fa, 0, sizeof g_fa);
        g_fa.fail_at = cfg->fail_alloc;
        bh_set_allocator(&fa);
        d->fa_installed = 1;
    }
    d->nclients = cfg->conns;
    d->clients = calloc(cfg->conns ? cfg->conns : 1, sizeof *d->clients);
    if (!d->clients || uv_loop_init(&d->loop) != 0) {
        free(d->clients);
        free(d);
        return 1;
    }
    size_t ndests = 2;
    int rc = 0;
    for (size_t i = 0; i < cfg->conns && rc == 0; i++) {
        client *c = &d->clients[i];
        size_t from_end = cfg->conns - 1 - i; /* faulty clients are the last ones */
        c->d = d;
        c->id = i;
        c->dest = i % ndests;
        c->kind = CK_GOOD;
        size_t k = 0;
        const size_t n[5] = {cfg->mid_frame, cfg->mid_tunnel, cfg->bad_route, cfg->long_header,
                             cfg->long_frame};
        for (size_t j = 0; j < 5; j++) {
            if (from_end >= k && from_end < k + n[j])
                c->kind = (enum client_kind)(CK_MID_FRAME + j);
            k += n[j];
        }
        rc = client_build(c, cfg);
    }

    uv_timer_init(&d->loop, &d->watchdog);
    uv_timer_init(&d->loop, &d->quiesce);
    d->watchdog.data = d;
    d->quiesce.data = d;
    if (rc == 0)
        rc = setup(d, ndests);
    if (rc == 0) {
        uint64_t timeout = cfg->timeout_ms;
        if (cfg->duration_s && timeout < (uint64_t)cfg->duration_s * 1000 + 60000)
            timeout = (uint64_t)cfg->duration_s * 1000 + 60000;
        d->deadline = UINT64_MAX; /* until note_ramp() */
        uv_update_time(&d->loop); /* building the streams took a while */
        uv_timer_start(&d->watchdog, on_watchdog, timeout, 0);
        uv_run(&d->loop, UV_RUN_DEFAULT);
    } else {
        demo_stop(d);
        uv_run(&d->loop, UV_RUN_DEFAULT);
    }
    if (d->proxy) {
        /* Tickets and endings are final only once every session is freed. */
        struct cr_proxy_stats fin;
        cr_proxy_get_stats(d->proxy, &fin);
        d->pst.tickets = fin.tickets;
        d->pst.enomem = fin.enomem;
    }

    int result = rc == 0 ? report(d) : 1;
    int close_rc = uv_loop_close(&d->loop);
    if (close_rc != 0) {
        fprintf(stderr, "demo: uv_loop_close: %s (a handle was left open)\n",
                uv_strerror(close_rc));
        result = 1;
    }
    for (size_t i = 0; i < d->nclients; i++)
        free(d->clients[i].stream);
    for (size_t i = 0; i < d->ndests; i++)
        cr_sink_free(d->sinks[i]);
    cr_proxy_free(d->proxy);
    free(d->clients);
    if (d->fa_installed)
        bh_set_allocator(NULL);
    free(d);
    return result;
}
