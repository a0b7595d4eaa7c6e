/* demo_clients.c - the content_routing demo's clients: each builds its
 * whole stream up front and writes it in --write-size pieces, faulty ones
 * stop, close or reset where their fault says, and every client reads and
 * checks its reply (see demo.c). */
#include "demo_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int client_build(client *c, const cr_demo_config *cfg)
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
void client_close(client *c, int reset, const char *failure)
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

int faulty_disconnect(const client *c)
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
    c->d->bytes_sent += c->inflight;
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

int client_start(client *c)
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

