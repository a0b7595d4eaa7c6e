/* hello.c - incremental TLS ClientHello parser (see hello.h).
 *
 * Two stages. Framing walks record headers as bytes arrive and collects only
 * the 4-byte handshake header; it keeps offsets, so a hello split into 1-byte
 * TCP segments costs one pass over each byte in total. Once 4 + length
 * handshake bytes are present, the body is decoded by a cursor that reads the
 * handshake bytes in place, stepping over the record headers between
 * fragments. Every length field is checked against the bytes that enclose it
 * before anything is read under it (RFC 8446 section 4.1.2 layout). */
#include "hello.h"

#include <string.h>

#define TLS_HANDSHAKE 0x16
#define TLS_RECORD_MAX 16384
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
/* legacy_version + random + three empty-ish vectors (RFC 8446 4.1.2). */
#define HELLO_BODY_MIN (2 + 32 + 1 + 2 + 2 + 1 + 1)

void sni_hello_init(sni_hello *h, size_t max_hello)
{
    memset(h, 0, sizeof *h);
    h->max_hello = max_hello;
}

/* ---- body cursor ---------------------------------------------------------
 * Reads handshake bytes spread over complete, already validated records. */
typedef struct cursor {
    const uint8_t *p;
    size_t pos;      /* next byte in p */
    size_t rec_left; /* bytes left in the current record */
    size_t left;     /* handshake body bytes left */
    int bad;         /* a read went past the body */
} cursor;

static uint8_t cur_u8(cursor *c)
{
    if (c->left == 0) {
        c->bad = 1;
        return 0;
    }
    if (c->rec_left == 0) {
        c->rec_left = ((size_t)c->p[c->pos + 3] << 8) | c->p[c->pos + 4];
        c->pos += 5;
    }
    c->rec_left--;
    c->left--;
    return c->p[c->pos++];
}

static size_t cur_u16(cursor *c)
{
    size_t hi = cur_u8(c);
    return (hi << 8) | cur_u8(c);
}

static void cur_skip(cursor *c, size_t n)
{
    while (n > 0 && !c->bad) {
        if (c->rec_left == 0) {
            cur_u8(c);
            n--;
            continue;
        }
        size_t step = n < c->rec_left ? n : c->rec_left;
        if (step > c->left) {
            c->bad = 1;
            return;
        }
        c->pos += step;
        c->rec_left -= step;
        c->left -= step;
        n -= step;
    }
}

/* ---- extensions ------------------------------------------------------------ */

/* What the hello keeps of a byte of a name it may log (host_name, ALPN
 * protocol): printable ASCII but the space, anything else as '?', so a
 * logged name can neither break, colour nor split a log line. */
static char log_safe(uint8_t c)
{
    return c > 0x20 && c < 0x7f ? (char)c : '?';
}

static int host_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* server_name (RFC 6066 section 3): ServerNameList<1..2^16-1> of (type,
 * opaque<1..2^16-1>).
 * A second server_name extension is malformed whatever the first held (RFC
 * 8446 section 4.2: no extension twice), so "seen" is not has_sni. */
static int parse_server_name(sni_hello *h, cursor *c, size_t ext_len)
{
    if (h->sni_ext_seen || ext_len < 2 || cur_u16(c) != ext_len - 2 || ext_len == 2)
        return SNI_HELLO_MALFORMED; /* ... or an empty list: RFC 6066 wants a name */
    h->sni_ext_seen = 1;
    size_t left = ext_len - 2;
    int bad_name = 0;
    while (left > 0) {
        if (left < 3)
            return SNI_HELLO_MALFORMED;
        uint8_t type = cur_u8(c);
        size_t n = cur_u16(c);
        left -= 3;
        if (n == 0 || n > left)
            return SNI_HELLO_MALFORMED;
        left -= n;
        if (type != 0) {
            cur_skip(c, n);
            continue;
        }
        if (h->has_sni)
            return SNI_HELLO_MALFORMED; /* two host_names */
        h->has_sni = 1;
        if (n > SNI_HOST_MAX) {
            bad_name = 1;
            cur_skip(c, n);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = cur_u8(c);
            if (ch >= 'A' && ch <= 'Z')
                ch = (uint8_t)(ch - 'A' + 'a');
            if (!host_char_ok(ch) || (ch == '.' && (i == 0 || h->sni[i - 1] == '.')))
                bad_name = 1;
            h->sni[i] = log_safe(ch); /* a refused name is still logged */
        }
        h->sni[n] = '\0';
        h->sni_len = n;
        if (h->sni[n - 1] == '.')
            bad_name = 1; /* RFC 6066: no trailing dot */
    }
    return bad_name ? SNI_HELLO_BAD_NAME : 0;
}

/* application_layer_protocol_negotiation (RFC 7301 section 3.1). */
static int parse_alpn(sni_hello *h, cursor *c, size_t ext_len)
{
    if (h->has_alpn || ext_len < 2 || cur_u16(c) != ext_len - 2 || ext_len == 2)
        return SNI_HELLO_MALFORMED;
    h->has_alpn = 1;
    size_t left = ext_len - 2, out = 0;
    while (left > 0) {
        size_t n = cur_u8(c);
        left--;
        if (n == 0 || n > left)
            return SNI_HELLO_MALFORMED;
        left -= n;
        size_t need = n + (out ? 1 : 0);
        if (h->alpn_truncated || out + need > SNI_ALPN_MAX) {
            h->alpn_truncated = 1;
            cur_skip(c, n);
            continue;
        }
        if (out)
            h->alpn[out++] = ',';
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = cur_u8(c);
            h->alpn[out++] = ch == ',' ? '?' : log_safe(ch);
        }
        h->alpn[out] = '\0';
    }
    return 0;
}

/* ---- ClientHello body ------------------------------------------------------- */

static int decode_body(sni_hello *h, const uint8_t *p)
{
    cursor c = {.p = p, .pos = 5, .left = h->hs_need}; /* header + body */
    c.rec_left = ((size_t)p[3] << 8) | p[4];
    cur_skip(&c, 4); /* handshake header, already checked */

    h->version = (uint16_t)cur_u16(&c);
    if ((h->version >> 8) != 3)
        return SNI_HELLO_MALFORMED;
    cur_skip(&c, 32); /* random */
    size_t n = cur_u8(&c);
    if (n > 32 || n > c.left)
        return SNI_HELLO_MALFORMED; /* session id */
    cur_skip(&c, n);
    n = cur_u16(&c);
    if (n < 2 || n % 2 || n > c.left)
        return SNI_HELLO_MALFORMED; /* cipher suites */
    cur_skip(&c, n);
    n = cur_u8(&c);
    if (n < 1 || n > c.left)
        return SNI_HELLO_MALFORMED; /* compression methods */
    cur_skip(&c, n);
    if (c.bad)
        return SNI_HELLO_MALFORMED;
    if (c.left == 0)
        return SNI_HELLO_DONE; /* no extensions at all */

    if (c.left < 2 || cur_u16(&c) != c.left)
        return SNI_HELLO_MALFORMED;
    int name_status = 0;
    while (c.left > 0) {
        if (c.left < 4)
            return SNI_HELLO_MALFORMED;
        size_t type = cur_u16(&c);
        size_t len = cur_u16(&c);
        if (len > c.left)
            return SNI_HELLO_MALFORMED;
        size_t after = c.left - len;
        int rc = 0;
        if (type == EXT_SERVER_NAME)
            rc = parse_server_name(h, &c, len);
        else if (type == EXT_ALPN)
            rc = parse_alpn(h, &c, len);
        else
            cur_skip(&c, len);
        if (rc == SNI_HELLO_BAD_NAME)
            name_status = rc;
        else if (rc != 0)
            return rc;
        if (c.bad || c.left != after)
            return SNI_HELLO_MALFORMED;
    }
    return name_status ? name_status : SNI_HELLO_DONE;
}

/* ---- framing ---------------------------------------------------------------- */

/* Classifies the first bytes of a connection that is not a TLS handshake
 * record: an SSL 2.0 ClientHello has the high bit of its 2-byte length set and
 * message type 1 in its third byte. */
static int classify_first(const uint8_t *p, size_t len)
{
    if (p[0] == TLS_HANDSHAKE)
        return len >= 2 && p[1] != 3 ? SNI_HELLO_NOT_TLS : SNI_HELLO_MORE;
    if (!(p[0] & 0x80))
        return SNI_HELLO_NOT_TLS;
    if (len < 3)
        return SNI_HELLO_MORE;
    return p[2] == 1 ? SNI_HELLO_SSLV2 : SNI_HELLO_NOT_TLS;
}

static int frame(sni_hello *h, const uint8_t *p, size_t len)
{
    for (;;) {
        if (h->rec_left == 0) {
            size_t avail = len - h->pos;
            if (avail == 0)
                return SNI_HELLO_MORE;
            if (h->pos == 0) {
                int rc = classify_first(p, len);
                if (rc != SNI_HELLO_MORE)
                    return rc;
            } else if (p[h->pos] != TLS_HANDSHAKE || (avail >= 2 && p[h->pos + 1] != 3)) {
                return SNI_HELLO_MALFORMED; /* something else inside the hello */
            }
            if (avail < 5)
                return SNI_HELLO_MORE;
            size_t rlen = ((size_t)p[h->pos + 3] << 8) | p[h->pos + 4];
            if (rlen == 0 || rlen > TLS_RECORD_MAX)
                return SNI_HELLO_MALFORMED;
            h->pos += 5;
            h->rec_left = rlen;
        }
        /* Fewest bytes the hello still needs buffered: the rest of this
         * record, or of the handshake message when that ends first. */
        size_t want = h->rec_left;
        if (h->hs_need && h->hs_need - h->hs_have < want)
            want = h->hs_need - h->hs_have;
        if (want > h->max_hello || h->pos > h->max_hello - want)
            return SNI_HELLO_TOO_LARGE;

        size_t take = len - h->pos < h->rec_left ? len - h->pos : h->rec_left;
        if (take == 0)
            return SNI_HELLO_MORE;
        for (size_t i = 0; h->hs_have + i < 4 && i < take; i++)
            h->hs_hdr[h->hs_have + i] = p[h->pos + i];
        h->pos += take;
        h->rec_left -= take;
        h->hs_have += take;
        if (!h->hs_need && h->hs_have >= 4) {
            if (h->hs_hdr[0] != HS_CLIENT_HELLO)
                return SNI_HELLO_MALFORMED;
            size_t body = ((size_t)h->hs_hdr[1] << 16) | ((size_t)h->hs_hdr[2] << 8) | h->hs_hdr[3];
            if (body < HELLO_BODY_MIN)
                return SNI_HELLO_MALFORMED;
            h->hs_need = 4 + body;
            if (h->hs_need > h->max_hello || h->pos - h->hs_have > h->max_hello - h->hs_need)
                return SNI_HELLO_TOO_LARGE;
        }
        if (h->hs_need && h->hs_have >= h->hs_need) {
            /* The hello must end exactly at a record boundary: a client sends
             * nothing else in the handshake before the server's reply. */
            if (h->hs_have != h->hs_need || h->rec_left != 0)
                return SNI_HELLO_MALFORMED;
            h->hello_end = h->pos;
            return decode_body(h, p);
        }
    }
}

int sni_hello_parse(sni_hello *h, const uint8_t *p, size_t len)
{
    if (h->status != SNI_HELLO_MORE)
        return h->status;
    if (len < h->pos)
        return h->status = SNI_HELLO_MALFORMED; /* caller broke the contract */
    h->status = frame(h, p, len);
    return h->status;
}

int sni_hello_offers_alpn(const sni_hello *h, const char *proto)
{
    size_t n = strlen(proto);
    const char *s = h->alpn;
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == n && memcmp(s, proto, n) == 0)
            return 1;
        if (!end)
            break;
        s = end + 1;
    }
    return 0;
}

const char *sni_hello_status_name(int status)
{
    switch (status) {
    case SNI_HELLO_MORE: return "more";
    case SNI_HELLO_DONE: return "done";
    case SNI_HELLO_NOT_TLS: return "not_tls";
    case SNI_HELLO_SSLV2: return "sslv2";
    case SNI_HELLO_MALFORMED: return "malformed";
    case SNI_HELLO_TOO_LARGE: return "too_large";
    case SNI_HELLO_BAD_NAME: return "bad_name";
    default: return "unknown";
    }
}
