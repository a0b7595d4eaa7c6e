/* content_routing.h - the content_routing proxy as a library: the
 * route-protocol parser (parser.c), the proxy (proxy.c, session.c,
 * upstream.c) and its command-line options (options.c). main.c runs it as a
 * program; the tests (tests/e2e/content_routing) start and stop it in their
 * own processes through this header. The protocol is documented at the top
 * of main.c.
 *
 * Everything here runs on one libuv loop thread (a program may run several
 * proxies, one per loop and thread: tools/workers.h; they share nothing). Objects are allocated by
 * their start function, stopped with their stop function (which closes their
 * handles) and freed with their free function once the loop has run the close
 * callbacks (after uv_run() returns). */
#ifndef CR_CONTENT_ROUTING_H
#define CR_CONTENT_ROUTING_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "cli.h"
#include "workers.h"

#define CR_MAX_DESTS 16
#define CR_MAX_NAME 64 /* longest destination name */

/* ---- completion tickets -------------------------------------------------- */

/* Accounting of the completion callbacks the parts register (writeq tickets
 * and shutdown callbacks): each must run exactly once before its object is
 * freed. Each object keeps a bit mask of its outstanding tickets. */
typedef struct cr_tickets {
    uint64_t issued;    /* callbacks registered */
    uint64_t completed; /* callbacks run for an outstanding ticket */
    uint64_t dupes;     /* callbacks run for a ticket not outstanding */
    uint64_t lost;      /* tickets still outstanding when their object was freed */
} cr_tickets;

static inline void cr_ticket_issue(cr_tickets *t, unsigned *mask, unsigned bit)
{
    *mask |= bit;
    t->issued++;
}

static inline void cr_ticket_done(cr_tickets *t, unsigned *mask, unsigned bit)
{
    if (*mask & bit) {
        *mask &= ~bit;
        t->completed++;
    } else {
        t->dupes++;
    }
}

static inline void cr_ticket_free(cr_tickets *t, unsigned mask)
{
    for (; mask; mask &= mask - 1)
        t->lost++;
}

/* Port a bound TCP handle listens on, or -1. */
int cr_bound_port(const uv_tcp_t *t);

/* ---- route-protocol parser (parser.c) ---------------------------------- */

typedef enum cr_token_kind {
    CR_TOK_NEED_MORE = 0,  /* the token at the front is incomplete */
    CR_TOK_ROUTE,          /* "ROUTE <name>\n" */
    CR_TOK_FRAME,          /* "<len>\n" + len payload bytes (or one line, line mode) */
    CR_TOK_TUNNEL,         /* "TUNNEL\n": raw bytes follow */
    CR_TOK_LINE_TOO_LONG,  /* no '\n' within max_line bytes */
    CR_TOK_FRAME_TOO_LONG, /* declared length > max_frame */
    CR_TOK_BAD_HEADER      /* a complete line that is none of the above */
} cr_token_kind;

/* One complete token at the front of a buffer. Pointers point into the
 * buffer and stay valid until it changes. */
typedef struct cr_token {
    cr_token_kind kind;
    size_t wire_len;     /* bytes of the whole token (header line + payload) */
    size_t payload_len;  /* CR_TOK_FRAME: payload bytes after the header */
    const uint8_t *name; /* CR_TOK_ROUTE: destination name, not terminated */
    size_t name_len;
} cr_token;

typedef struct cr_parser {
    size_t max_line;  /* longest header line, '\n' excluded */
    size_t max_frame; /* largest declared payload */
    int line_frames;  /* any other line is a frame by itself (harness mode) */
    size_t scanned;   /* front bytes known to hold no '\n' */
} cr_parser;

void cr_parser_init(cr_parser *p, size_t max_line, size_t max_frame, int line_frames);

/* Looks at the front of b without consuming anything. Returns the kind of
 * the first token and fills *tok; on CR_TOK_NEED_MORE the caller reads more.
 * An over-long line or frame length is reported as soon as it is certain,
 * before its bytes are buffered. After consuming tok->wire_len bytes the
 * caller calls cr_parser_consumed(). */
cr_token_kind cr_parser_peek(cr_parser *p, const bh_buf *b, cr_token *tok);

/* The front token was removed from the buffer: restart scanning. */
void cr_parser_consumed(cr_parser *p);

/* Bytes a buffer must hold so that every acceptable token fits. */
size_t cr_parser_max_token(const cr_parser *p);

/* ---- proxy (proxy.c) ---------------------------------------------------- */

typedef struct cr_dest {
    char name[CR_MAX_NAME + 1];
    struct sockaddr_storage addr; /* IPv4 or IPv6 */
} cr_dest;

typedef struct cr_proxy_config {
    cr_dest dests[CR_MAX_DESTS];
    size_t ndests;
    int default_dest;    /* index routed at accept (--upstream), or -1 */
    int line_frames;     /* harness mode: every other line is a frame */
    size_t read_reserve; /* bh_reader read_reserve per direction */
    size_t write_budget; /* bh_writeq max_bytes per direction */
    size_t max_line;     /* longest header line */
    size_t max_frame;    /* largest payload frame */
    int upstream_sndbuf; /* SO_SNDBUF for upstream sockets, 0 = kernel default */
    int verbose;         /* log each session's end on stderr */
    uint64_t header_timeout_ms; /* close a client whose first token (the ROUTE
                                   line; with --upstream its first line) is not
                                   complete this long after accept; 0 = none */
    uint64_t idle_timeout_ms;   /* close a session when the client sends
                                   nothing for this long while read, either
                                   side reads nothing of what is queued for
                                   it, or the destination owes its reply
                                   (after the client's EOF) and sends nothing
                                   for this long; 0 = none */
    worker *worker;      /* NULL: a plain listener; else the listener is
                            workers_listen()ed as this worker (SO_REUSEPORT)
                            and session ids are unique across workers */
} cr_proxy_config;

/* Fills the defaults: no destinations, read_reserve 16 KiB, write_budget
 * 256 KiB, max_line 1024, max_frame 64 KiB, header timeout 10 s, idle
 * timeout 300 s. */
void cr_proxy_config_default(cr_proxy_config *cfg);

/* Checks the limits fit together: a refused slice must fit in the queue once
 * it has drained to its low-water mark. Writes a reason to err (size n). */
int cr_proxy_config_check(const cr_proxy_config *cfg, char *err, size_t n);

struct cr_proxy_stats {
    uint64_t accepted;   /* client connections accepted */
    uint64_t completed;  /* both directions ended cleanly */
    uint64_t rejected;   /* answered with an ERR line */
    uint64_t aborted;    /* client or upstream failed, or input ended mid-frame */
    uint64_t live;       /* sessions not yet freed */
    uint64_t frames;     /* payload frames routed */
    uint64_t bytes_up;   /* bytes queued towards destinations */
    uint64_t bytes_down; /* bytes queued towards clients */
    uint64_t pauses;     /* reads stopped because a write queue was full */
    size_t peak_queued;  /* largest queued_bytes seen on one upstream queue */
    uint64_t enomem;     /* sessions ended by BH_ENOMEM (logged on stderr) */
    uint64_t header_timeouts; /* clients closed by the header deadline */
    uint64_t idle_timeouts;   /* sessions closed by the idle timeout */
    uint64_t fd_episodes;     /* times accepting paused for lack of descriptors */
    cr_tickets tickets;  /* shutdown callbacks and ERR-line tickets */
};

typedef struct cr_proxy cr_proxy;

/* Listens on addr (port 0 picks one; *port receives it). Returns 0 or a
 * libuv / bh error; on error nothing is left to free. */
int cr_proxy_start(cr_proxy **out, uv_loop_t *loop, const cr_proxy_config *cfg,
                   const struct sockaddr *addr, int *port);
void cr_proxy_get_stats(const cr_proxy *px, struct cr_proxy_stats *out);
/* Closes the listener and every session (their upstreams are reset). */
void cr_proxy_stop(cr_proxy *px);
/* Frees px once the loop has run the close callbacks. */
void cr_proxy_free(cr_proxy *px);

/* ---- command line (options.c) ------------------------------------------- */

/* getopt_long() codes of the proxy's options; a program that takes them too
 * numbers its own options from CR_OPT_END. */
enum {
    CR_OPT_DEST = 256, CR_OPT_UPSTREAM, CR_OPT_LINE_FRAMES, CR_OPT_VERBOSE, CR_OPT_READ_RESERVE,
    CR_OPT_WRITE_BUDGET, CR_OPT_MAX_LINE, CR_OPT_MAX_FRAME, CR_OPT_UPSTREAM_SNDBUF,
    CR_OPT_HEADER_TIMEOUT, CR_OPT_IDLE_TIMEOUT, CR_OPT_END
};

/* The struct option entries of the proxy's options (without --listen). */
#define CR_PROXY_OPTIONS                                                                           \
    {"dest", required_argument, NULL, CR_OPT_DEST},                                                \
        {"upstream", required_argument, NULL, CR_OPT_UPSTREAM},                                    \
        {"line-frames", no_argument, NULL, CR_OPT_LINE_FRAMES},                                    \
        {"verbose", no_argument, NULL, CR_OPT_VERBOSE},                                            \
        {"read-reserve", required_argument, NULL, CR_OPT_READ_RESERVE},                            \
        {"write-budget", required_argument, NULL, CR_OPT_WRITE_BUDGET},                            \
        {"max-line", required_argument, NULL, CR_OPT_MAX_LINE},                                    \
        {"max-frame", required_argument, NULL, CR_OPT_MAX_FRAME},                                  \
        {"upstream-sndbuf", required_argument, NULL, CR_OPT_UPSTREAM_SNDBUF},                      \
        {"header-timeout-ms", required_argument, NULL, CR_OPT_HEADER_TIMEOUT},                     \
        {"idle-timeout-ms", required_argument, NULL, CR_OPT_IDLE_TIMEOUT}

/* Applies option c (one of CR_OPT_*) with value arg to pc. Returns 1 when c
 * was a proxy option, 0 otherwise; exits 2 on a bad value (cli_die()). */
int cr_proxy_option(int c, const char *arg, cr_proxy_config *pc);

#endif
