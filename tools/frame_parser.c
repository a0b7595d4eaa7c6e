/* frame_parser.c - incremental length-prefixed framing (see frame_parser.h). */
#include "frame_parser.h"

void frame_parser_init(frame_parser *p, uint32_t max_frame) { p->max_frame = max_frame; }

size_t frame_parser_max_wire(const frame_parser *p)
{
    return FRAME_HEADER_LEN + (size_t)p->max_frame;
}

frame_parse_status frame_parser_next(const frame_parser *p, bh_buf *b, bh_bytes *payload,
                                     size_t *need, uint32_t *declared)
{
    if (!p || !b || !payload)
        return FRAME_PARSE_ERROR;
    size_t len = bh_buf_len(b);
    if (len < FRAME_HEADER_LEN) {
        if (need)
            *need = FRAME_HEADER_LEN - len;
        return FRAME_PARSE_NEED_MORE;
    }
    const uint8_t *h = bh_buf_data(b);
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n > p->max_frame) {
        if (declared)
            *declared = n;
        return FRAME_PARSE_TOO_LONG;
    }
    size_t avail = len - FRAME_HEADER_LEN;
    if (avail < n) {
        if (need)
            *need = (size_t)n - avail;
        return FRAME_PARSE_NEED_MORE;
    }
    /* Both calls are in range now, so neither can fail half-way. */
    bh_buf_advance(b, FRAME_HEADER_LEN);
    bh_buf_split_prefix(b, n, payload);
    return FRAME_PARSE_FRAME;
}
