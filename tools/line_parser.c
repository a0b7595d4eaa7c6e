/* line_parser.c - incremental line framing (see line_parser.h). */
#include "line_parser.h"

#include <string.h>

void line_parser_init(line_parser *p, size_t max_line)
{
    p->max_line = max_line;
    p->scanned = 0;
}

void line_parser_reset(line_parser *p) { p->scanned = 0; }

line_parse_status line_parser_next(line_parser *p, bh_buf *b, bh_bytes *line)
{
    if (!p || !b || !line)
        return LINE_PARSE_ERROR;
    size_t len = bh_buf_len(b);
    /* A line may hold max_line bytes, so its '\n' is at index max_line at
     * the latest: never look further than that. */
    size_t limit = p->max_line < len ? p->max_line + 1 : len;
    size_t from = p->scanned < limit ? p->scanned : limit;
    const uint8_t *nl = NULL;

    if (from < limit)
        nl = memchr(bh_buf_data(b) + from, '\n', limit - from);
    if (!nl) {
        p->scanned = limit;
        return limit > p->max_line ? LINE_PARSE_TOO_LONG : LINE_PARSE_NEED_MORE;
    }
    bh_buf_split_prefix(b, (size_t)(nl - bh_buf_data(b)) + 1, line); /* in range */
    p->scanned = 0;
    return LINE_PARSE_LINE;
}
