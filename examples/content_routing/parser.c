/* parser.c - the content_routing route protocol, parsed incrementally over a
 * bh_buf without consuming it (see content_routing.h for the API and
 * examples/content_routing/main.c for the protocol).
 *
 * Pure and loop-free. The scan position is remembered, so however the input
 * is fragmented each byte of a header line is searched for '\n' once; a line
 * is never looked at past max_line + 1 bytes, so a peer that never sends '\n'
 * is caught as soon as max_line + 1 bytes are buffered. */
#include "content_routing.h"

#include <string.h>

void cr_parser_init(cr_parser *p, size_t max_line, size_t max_frame, int line_frames)
{
    p->max_line = max_line;
    p->max_frame = max_frame;
    p->line_frames = line_frames;
    p->scanned = 0;
}

void cr_parser_consumed(cr_parser *p) { p->scanned = 0; }

size_t cr_parser_max_token(const cr_parser *p)
{
    if (p->line_frames)
        return p->max_line + 1;
    return p->max_line + 1 + p->max_frame;
}

static int name_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* Classifies a complete header line (without its '\n'). */
static cr_token_kind classify(const cr_parser *p, const uint8_t *line, size_t n, cr_token *tok)
{
    static const char route[] = "ROUTE ";
    static const char tunnel[] = "TUNNEL";

    if (n == sizeof tunnel - 1 && memcmp(line, tunnel, n) == 0)
        return CR_TOK_TUNNEL;
    if (n >= sizeof route - 1 && memcmp(line, route, sizeof route - 1) == 0) {
        const uint8_t *name = line + sizeof route - 1;
        size_t name_len = n - (sizeof route - 1);
        if (name_len == 0 || name_len > CR_MAX_NAME)
            return CR_TOK_BAD_HEADER;
        for (size_t i = 0; i < name_len; i++)
            if (!name_char_ok(name[i]))
                return CR_TOK_BAD_HEADER;
        tok->name = name;
        tok->name_len = name_len;
        return CR_TOK_ROUTE;
    }
    if (p->line_frames) {
        tok->payload_len = n + 1;
        return CR_TOK_FRAME;
    }
    if (n == 0)
        return CR_TOK_BAD_HEADER;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (line[i] < '0' || line[i] > '9')
            return CR_TOK_BAD_HEADER;
        size_t d = (size_t)(line[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return CR_TOK_FRAME_TOO_LONG;
        v = v * 10 + d;
        if (v > p->max_frame)
            return CR_TOK_FRAME_TOO_LONG;
    }
    tok->payload_len = v;
    return CR_TOK_FRAME;
}

cr_token_kind cr_parser_peek(cr_parser *p, const bh_buf *b, cr_token *tok)
{
    size_t len = bh_buf_len(b);
    const uint8_t *data = bh_buf_data(b);
    /* The '\n' of an acceptable line is at index max_line at the latest. */
    size_t limit = len < p->max_line + 1 ? len : p->max_line + 1;
    size_t from = p->scanned < limit ? p->scanned : limit;
    const uint8_t *nl = NULL;

    memset(tok, 0, sizeof *tok);
    if (from < limit)
        nl = memchr(data + from, '\n', limit - from);
    if (!nl) {
        p->scanned = limit;
        tok->kind = limit > p->max_line ? CR_TOK_LINE_TOO_LONG : CR_TOK_NEED_MORE;
        return tok->kind;
    }
    size_t line_len = (size_t)(nl - data);
    p->scanned = line_len; /* the next peek finds this '\n' at once */
    tok->kind = classify(p, data, line_len, tok);
    if (tok->kind != CR_TOK_FRAME) {
        tok->wire_len = line_len + 1;
        return tok->kind;
    }
    if (p->line_frames) {
        tok->wire_len = line_len + 1;
        return tok->kind;
    }
    /* line_len <= max_line and payload_len <= max_frame: no overflow. */
    tok->wire_len = line_len + 1 + tok->payload_len;
    if (len < tok->wire_len)
        tok->kind = CR_TOK_NEED_MORE;
    return tok->kind;
}
