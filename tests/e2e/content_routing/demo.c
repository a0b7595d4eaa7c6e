/* demo.c - `content_routing_rig demo`: sinks, the proxy and N clients on one
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
 * client had its first verified reply (the ramp, announced on stdout).
 *
 * On a terminal a status line shows how far the clients got
 * (demo_progress.c); otherwise the summary at the end is all the output.
 *
 * This file: the allocator, the orchestration and the entry point;
 * demo_clients.c the clients, demo_progress.c the status line,
 * demo_report.c the verification and summary. */
#include "demo_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counting / failing allocator (--fail-alloc, --count-allocs) ---------- */

fa_state g_fa;

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

const char *const dest_names[MAX_DEMO_DESTS] = {"alpha", "beta", "gamma", "delta"};

const char *const kind_names[] = {"good",      "mid-frame",   "mid-tunnel",
                                         "bad-route", "long-header", "long-frame"};

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
    cfg->progress_after_ms = 1000;
    cr_proxy_config_default(&cfg->proxy);
}

/* ---- orchestration --------------------------------------------------------
 */

static void on_timer_closed(uv_handle_t *h) { (void)h; }

/* Stops every component; the loop ends once their handles are closed. */
void demo_stop(demo *d)
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
    demo_progress_finish(d);
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

void demo_client_done(demo *d)
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
        cli_die("%zu faulty clients but only %zu connections", faults, cfg->conns);
    }
    char why[200];
    cr_proxy_config check = cfg->proxy;
    check.ndests = 1;
    if (cr_proxy_config_check(&check, why, sizeof why) != 0) {
        cli_die("%s", why);
    }
    if (cfg->frame_bytes > cfg->proxy.max_frame) {
        cli_die("--frame-bytes above --max-frame");
    }
    if (cfg->duration_s && !cfg->external) {
        cli_die("--duration-s needs --proxy (sinks in other processes)");
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
        demo_progress_start(d);
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

