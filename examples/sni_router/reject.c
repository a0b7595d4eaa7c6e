/* reject.c - how sni_router refuses a connection: one log line and one
 * counter per connection and kind, the fatal TLS alert of that kind where one
 * makes sense, then a half-close. The client's further input is read and
 * dropped until its EOF (at most DISCARD_MAX bytes or one more
 * --hello-timeout), so closing does not turn into an RST that could overtake
 * the alert. */
#include "conn.h"
#include "log.h"

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

static void log_conn(const sni_conn *c, const char *what)
{
    if (c->r->cfg->quiet)
        return;
    const sni_hello *h = &c->ph->hello;
    log_msg(LOG_LEVEL_WARN, c->id, &c->peer.sa, "%s sni=%s alpn=%s", what,
            h->has_sni ? h->sni : "-", h->alpn[0] ? h->alpn : "-");
}

/* ---- rejection --------------------------------------------------------------- */

static void on_discard_timeout(uv_timer_t *t)
{
    sni_conn_close(t->data);
}

/* The answer is out: close now when the client's EOF came already, else
 * after it (sni_reject_input), DISCARD_MAX bytes or the timer. */
static void on_alert_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    sni_conn *c = req->data;
    c->ph->answered = 1;
    if (c->client_eof)
        sni_conn_close(c);
}

void sni_reject_input(sni_conn *c, int status)
{
    c->ph->discarded += bh_buf_len(&c->ph->buf);
    bh_buf_advance(&c->ph->buf, bh_buf_len(&c->ph->buf));
    if (status == UV_EOF)
        c->client_eof = 1;
    /* A clean EOF waits for the answer to be out; a reset need not. */
    if ((status == UV_EOF && c->ph->answered) || (status != BH_OK && status != UV_EOF) ||
        c->ph->discarded > DISCARD_MAX)
        sni_conn_close(c);
}

/* Discards the client's input until its EOF. The reader may have finished
 * already (its buffer was full, or it saw EOF while the backend connected):
 * it is bound afresh to the emptied buffer, and reads that EOF again. */
static int discard_input(sni_conn *c)
{
    sni_phase *ph = c->ph;
    bh_buf_advance(&ph->buf, bh_buf_len(&ph->buf));
    if (bh_reader_start(&ph->reader) != BH_ECLOSED)
        return 0;
    size_t reserve = c->r->cfg->max_hello < HELLO_READ_RESERVE ? c->r->cfg->max_hello
                                                                : HELLO_READ_RESERVE;
    if (bh_reader_init(&ph->reader, (uv_stream_t *)&c->client, &ph->buf, reserve,
                       sni_on_client_read, c) != 0)
        return -1;
    return bh_reader_start(&ph->reader) == BH_OK ? 0 : -1;
}

static void on_alert_written(uv_write_t *req, int status)
{
    sni_conn *c = req->data;
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->client)) {
        sni_conn_close(c);
        return;
    }
    c->ph->shutdown_req.data = c;
    if (uv_shutdown(&c->ph->shutdown_req, (uv_stream_t *)&c->client, on_alert_shutdown) != 0)
        sni_conn_close(c);
}

void sni_reject(sni_conn *c, sni_kind k)
{
    sni_router *r = c->r;
    r->kinds[k]++;
    log_conn(c, sni_kind_name(k));
    c->state = ST_REJECTING;
    uv_timer_start(&c->ph->timer, on_discard_timeout, r->cfg->hello_timeout_ms, 0);
    const uint8_t *alert = alert_for(k);
    if (k == SNI_CLIENT_GONE || k == SNI_HELLO_TIMEOUT || discard_input(c) != 0) {
        sni_conn_close(c);
        return;
    }
    if (!alert) {
        c->ph->shutdown_req.data = c;
        if (uv_shutdown(&c->ph->shutdown_req, (uv_stream_t *)&c->client, on_alert_shutdown) != 0)
            sni_conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)alert, 7);
    c->ph->alert_req.data = c;
    if (uv_write(&c->ph->alert_req, (uv_stream_t *)&c->client, &b, 1, on_alert_written) != 0)
        sni_conn_close(c);
}

