/* http_parse.h - http_router's strict HTTP/1.1 message parser (RFC 9112),
 * written for a proxy that forwards heads and bodies unchanged: it never
 * copies or rewrites a byte, it only tells where things are.
 *
 *   hp_scan_head()      finds the end of a head in the contiguous bytes of a
 *                       bh_buf as they grow (resumable, O(n) over all calls),
 *                       refusing bare LF and bare CR line ends and heads or
 *                       request lines over the limits
 *   hp_parse_request()  parses a complete request head: method, target,
 *   hp_parse_response() version, Host, body framing and the Connection,
 *                       Upgrade and Expect facts, as offsets into the bytes
 *   hp_chunked_feed()   walks a chunked body (sizes, extensions, data,
 *                       trailers) incrementally so the relay can forward the
 *                       encoding unchanged and knows where the body ends
 *
 * Anything that could be framed two ways is refused (request smuggling):
 * Content-Length with Transfer-Encoding, differing or malformed
 * Content-Length, a request Transfer-Encoding whose last coding is not
 * chunked, obs-fold, whitespace before a colon, CTLs in fields, invalid
 * token characters, overflowing chunk sizes. Nothing here allocates. */
#ifndef HTTP_ROUTER_PARSE_H
#define HTTP_ROUTER_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Results. Errors name the status a server answers a request with; for a
 * response every error means "bad gateway". */
enum {
    HP_MORE = 0,      /* need more bytes */
    HP_DONE = 1,      /* complete */
    HP_E400 = -400,   /* malformed or ambiguous: 400, close */
    HP_E414 = -414,   /* request line over the limit */
    HP_E431 = -431,   /* head over the limit */
    HP_E505 = -505    /* not HTTP/1.0 or HTTP/1.1 */
};

/* How a message body is delimited. */
enum hp_framing {
    HP_BODY_NONE,     /* no body */
    HP_BODY_LENGTH,   /* content_length bytes */
    HP_BODY_CHUNKED,  /* chunked; walk it with hp_chunked_feed() */
    HP_BODY_CLOSE,    /* response: until the server closes */
    HP_BODY_TUNNEL    /* response: 101 or 2xx to CONNECT, raw bytes follow */
};

/* Connection header tokens seen (bit set). */
enum { HP_CONN_CLOSE = 1, HP_CONN_KEEP_ALIVE = 2, HP_CONN_UPGRADE = 4 };

/* Methods the relay treats specially. */
enum { HP_M_OTHER, HP_M_GET, HP_M_HEAD, HP_M_CONNECT, HP_M_OPTIONS, HP_M_PUT, HP_M_DELETE,
       HP_M_TRACE };

/* A range of the parsed bytes. */
typedef struct hp_span {
    size_t off, len;
} hp_span;

/* Limits of a head. */
typedef struct hp_limits {
    size_t max_head; /* whole head, final CRLF included */
    size_t max_line; /* request line (CRLF included); <= max_head */
} hp_limits;

/* Resumable head scan over growing bytes; zero it (hp_scan_init) per head. */
typedef struct hp_scan {
    size_t pos;        /* bytes scanned */
    size_t line_start; /* start of the current line */
    size_t lines;      /* complete lines so far */
} hp_scan;

/* A parsed head. Spans are offsets into the bytes given to the parser. */
typedef struct hp_msg {
    size_t head_len;        /* bytes of the head, final CRLF included */
    int minor;              /* HTTP/1.minor (0 or 1) */
    hp_span method, target; /* request line */
    int method_kind;        /* HP_M_* */
    hp_span path;           /* origin-form path (target, or the path of an absolute-form
                               target); len 0 for authority-form and "*" */
    hp_span host;           /* host name to route by: Host (or the absolute-form
                               authority) without its port */
    int has_host;           /* a Host field was present */
    int status;             /* response status code */
    int framing;            /* enum hp_framing */
    uint64_t content_length;
    unsigned conn;          /* HP_CONN_* */
    unsigned conn_fields;   /* Connection field lines seen */
    hp_span conn_line;      /* the Connection field line, CRLF included, when it is
                               the only one (conn_fields == 1); len 0 otherwise */
    int conn_only_close;    /* that line's value is exactly the token "close" */
    int has_upgrade;        /* an Upgrade field was present */
    int expect_continue;    /* Expect: 100-continue */
} hp_msg;

/* Starts a scan for a new head. */
void hp_scan_init(hp_scan *s);

/* Bytes of empty lines (CRLF pairs) at the start of p[0..len), which a
 * server ignores before a request line (RFC 9112 section 2.2). */
size_t hp_leading_crlf(const uint8_t *p, size_t len);

/* Looks for the end of a head in p[0..len) (the same bytes, possibly longer,
 * on every call). Returns HP_DONE with *head_len set, HP_MORE, HP_E400 (bare
 * LF, bare CR before LF, empty first line), HP_E414 (first line over
 * lim->max_line) or HP_E431 (no end within lim->max_head bytes). */
int hp_scan_head(hp_scan *s, const uint8_t *p, size_t len, const hp_limits *lim,
                 size_t *head_len);

/* Parses the complete request head p[0..head_len) (as hp_scan_head found
 * it). Returns HP_DONE with *m filled, or HP_E400 or HP_E505 (an
 * HTTP/1.0 request with Transfer-Encoding is HP_E400: RFC 9112 section 6.1). An
 * HTTP/1.1 request needs a Host field; a request with a body has framing
 * HP_BODY_LENGTH or HP_BODY_CHUNKED, otherwise HP_BODY_NONE. */
int hp_parse_request(const uint8_t *p, size_t head_len, hp_msg *m);

/* Parses the complete response head p[0..head_len) to a request of
 * method_kind (HEAD and CONNECT change the framing). Returns HP_DONE or
 * HP_E400 (which a proxy answers with 502). A 1xx other than 101 has
 * framing HP_BODY_NONE: another head follows. */
int hp_parse_response(const uint8_t *p, size_t head_len, int method_kind, hp_msg *m);

/* Whether a method is idempotent (RFC 9110 section 9.2.2). */
int hp_idempotent(int method_kind);

/* Most bytes of a chunk-size line (size, extensions, CRLF) and of all
 * trailer lines together. */
#define HP_CHUNK_LINE_MAX 4096
#define HP_TRAILERS_MAX 16384

/* A chunked body walk; zero it (hp_chunked_init) per body. */
typedef struct hp_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk (state data) */
    size_t line;        /* bytes of the current size or trailer line */
    size_t trailers;    /* trailer bytes so far */
    int digits;         /* hex digits of the current size */
} hp_chunked;

void hp_chunked_init(hp_chunked *c);

/* Walks p[0..len), the next bytes of a chunked body. *used receives how many
 * belong to the body (all of them, unless it ended inside p). Returns
 * HP_MORE (all used, body not over), HP_DONE (the body ended after *used
 * bytes, trailers and final CRLF included) or HP_E400 (*used: bytes walked
 * before the error). */
int hp_chunked_feed(hp_chunked *c, const uint8_t *p, size_t len, size_t *used);

#endif
