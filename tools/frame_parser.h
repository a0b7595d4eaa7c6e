/* frame_parser.h - incremental length-prefixed framing over a bh_buf.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload. The
 * header may arrive long before the payload, in any fragments. The declared
 * length is checked against max_frame as soon as the header is complete, so
 * an oversized frame is rejected before anything is reserved for it. Pure and
 * loop-free: the length_prefix example, tests and a fuzzer share it. */
#ifndef BH_TOOLS_FRAME_PARSER_H
#define BH_TOOLS_FRAME_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>

/* Size of the length header. */
#define FRAME_HEADER_LEN ((size_t)4)

typedef enum frame_parse_status {
    FRAME_PARSE_FRAME = 0,     /* *payload holds one complete payload */
    FRAME_PARSE_NEED_MORE = 1, /* incomplete; *need says how many more bytes */
    FRAME_PARSE_TOO_LONG = 2,  /* declared length > max_frame: reject */
    FRAME_PARSE_ERROR = 3      /* NULL argument */
} frame_parse_status;

typedef struct frame_parser {
    uint32_t max_frame; /* longest accepted payload */
} frame_parser;

void frame_parser_init(frame_parser *p, uint32_t max_frame);

/* Bytes a buffer must be able to hold for every accepted frame. */
size_t frame_parser_max_wire(const frame_parser *p);

/* Extracts the next complete frame from the front of b: drops its header and
 * splits the payload off as an owned bh_bytes (no copy, no allocation; one
 * reference for the caller). On FRAME_PARSE_NEED_MORE, *need (if not NULL)
 * is the number of bytes still missing for the frame at the front: the
 * header's remainder while the header is incomplete, else the payload's. On
 * FRAME_PARSE_TOO_LONG, *declared (if not NULL) is the declared length.
 * b and *payload are untouched unless FRAME_PARSE_FRAME is returned. */
frame_parse_status frame_parser_next(const frame_parser *p, bh_buf *b, bh_bytes *payload,
                                     size_t *need, uint32_t *declared);

#endif
