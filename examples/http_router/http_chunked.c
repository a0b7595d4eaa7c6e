/* http_chunked.c - the incremental chunked-body walk of http_router (see
 * http_parse.h). RFC 9112 section 7.1:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS value ] )
 *
 * Sizes are hex without sign or blanks and at most 15 digits (no overflow);
 * an extension may hold anything printable but the size line is bounded
 * (HP_CHUNK_LINE_MAX); trailer lines are field lines (token, colon, value)
 * bounded together by HP_TRAILERS_MAX; every line ends in CRLF. Data bytes
 * are skipped in O(1), never looked at. */
#include "http_parse.h"

#include <string.h>

enum {
    C_SIZE,      /* hex digits of the size */
    C_EXT,       /* after the size: BWS, extensions, up to CR */
    C_SIZE_LF,   /* LF ending the size line */
    C_DATA,      /* chunk data */
    C_DATA_CR,   /* CRLF after the data */
    C_DATA_LF,
    C_TRAILER,   /* start of a trailer line, or the final CRLF */
    C_FIELD,     /* inside a trailer line */
    C_FIELD_LF,
    C_END_LF,    /* LF of the final CRLF */
    C_DONE
};

#define MAX_DIGITS 15

void hp_chunked_init(hp_chunked *c) { memset(c, 0, sizeof *c); }

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int tchar(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* One byte of a size line, trailer or CRLF; returns the new state or -1. */
static int step(hp_chunked *c, uint8_t ch)
{
    switch (c->state) {
    case C_SIZE: {
        int h = hexval(ch);
        if (h >= 0) {
            if (++c->digits > MAX_DIGITS)
                return -1;
            c->remaining = c->remaining * 16 + (uint64_t)h;
            return C_SIZE;
        }
        if (c->digits == 0)
            return -1;
        if (ch == '\r')
            return C_SIZE_LF;
        return ch == ';' || ch == ' ' || ch == '\t' ? C_EXT : -1;
    }
    case C_EXT:
        if (ch == '\r')
            return C_SIZE_LF;
        return ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? C_EXT : -1;
    case C_SIZE_LF:
        if (ch != '\n')
            return -1;
        c->line = 0;
        return c->remaining ? C_DATA : C_TRAILER;
    case C_DATA_CR:
        return ch == '\r' ? C_DATA_LF : -1;
    case C_DATA_LF:
        if (ch != '\n')
            return -1;
        c->digits = 0;
        c->line = 0;
        return C_SIZE;
    case C_TRAILER:
        if (ch == '\r')
            return C_END_LF;
        c->line = 1;
        return tchar(ch) ? C_FIELD : -1;
    case C_FIELD:
        if (ch == '\r')
            return c->line == 0 ? C_FIELD_LF : -1; /* line: 0 once the colon was seen */
        if (c->line > 0) {
            if (ch == ':') {
                c->line = 0;
                return C_FIELD;
            }
            return tchar(ch) ? C_FIELD : -1;
        }
        return ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? C_FIELD : -1;
    case C_FIELD_LF:
        return ch == '\n' ? C_TRAILER : -1;
    case C_END_LF:
        return ch == '\n' ? C_DONE : -1;
    default:
        return -1;
    }
}

int hp_chunked_feed(hp_chunked *c, const uint8_t *p, size_t len, size_t *used)
{
    size_t i = 0;
    while (i < len) {
        if (c->state == C_DONE)
            break;
        if (c->state == C_DATA) {
            uint64_t take = c->remaining < len - i ? c->remaining : len - i;
            i += (size_t)take;
            c->remaining -= take;
            if (c->remaining == 0)
                c->state = C_DATA_CR;
            continue;
        }
        int was = c->state;
        int next = step(c, p[i]);
        if (next < 0) {
            *used = i;
            return HP_E400;
        }
        i++;
        /* Size lines count in line; in a trailer line, line is the "before
         * the colon" flag and the bytes count in trailers. */
        if (was == C_SIZE || was == C_EXT) {
            if (++c->line > HP_CHUNK_LINE_MAX) {
                *used = i;
                return HP_E400;
            }
        }
        if (was >= C_TRAILER && was <= C_END_LF && ++c->trailers > HP_TRAILERS_MAX) {
            *used = i;
            return HP_E400;
        }
        c->state = next;
    }
    *used = i;
    return c->state == C_DONE ? HP_DONE : HP_MORE;
}
