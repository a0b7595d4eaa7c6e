/* line_parser.h - incremental '\n'-terminated line framing over a bh_buf.
 *
 * Pure and loop-free: it only looks at the buffer it is given, so the same
 * code serves the line_protocol example, tests and a fuzzer. A complete line
 * is split off the front of the buffer as an owned bh_bytes (no copy, no
 * allocation); an incomplete one stays in the buffer, and the parser remembers
 * how far it has already scanned so bytes are searched once however the input
 * is fragmented. */
#ifndef BH_TOOLS_LINE_PARSER_H
#define BH_TOOLS_LINE_PARSER_H

#include <stddef.h>

#include <bytes_handoff.h>

typedef enum line_parse_status {
    LINE_PARSE_LINE = 0,      /* *line holds one complete line, '\n' included */
    LINE_PARSE_NEED_MORE = 1, /* no complete line yet; read more and call again */
    LINE_PARSE_TOO_LONG = 2,  /* the line at the front exceeds max_line: reject */
    LINE_PARSE_ERROR = 3      /* NULL argument */
} line_parse_status;

typedef struct line_parser {
    size_t max_line; /* longest accepted line, '\n' excluded */
    size_t scanned;  /* bytes at the buffer's front known to hold no '\n' */
} line_parser;

/* Accepts lines of up to max_line bytes before their '\n'. A buffer whose
 * max_len is max_line + 1 always fits one complete line. */
void line_parser_init(line_parser *p, size_t max_line);

/* Extracts the next complete line from the front of b into *line (one
 * reference, released by the caller). Leaves b and *line untouched unless it
 * returns LINE_PARSE_LINE. Call it again until it stops returning a line.
 * If bytes are removed from b by other means, call line_parser_reset(). */
line_parse_status line_parser_next(line_parser *p, bh_buf *b, bh_bytes *line);

/* Forgets the scan position (after take_tail, advance or free by the caller). */
void line_parser_reset(line_parser *p);

#endif
