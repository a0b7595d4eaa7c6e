/* content_routing.c - a content-routing TCP proxy on libuv built from
 * bh_reader, bh_buf and bh_writeq, with a self-verifying demo.
 *
 *   content_routing proxy --listen 127.0.0.1:PORT --dest NAME=IPV4:PORT ...
 *   content_routing sink  --listen 127.0.0.1:PORT --name NAME
 *   content_routing demo  [--conns N --write-size N --tunnel-bytes N ...]
 *
 * PROTOCOL (client -> proxy), one byte stream per client connection:
 *
 *   ROUTE <dest>\n          selects the destination: a configured name of
 *                           1-64 characters [A-Za-z0-9._-]. The proxy opens
 *                           one upstream connection to it for this client.
 *   <len>\n<len bytes>      payload frame: decimal length (digits only), '\n',
 *                           then exactly len bytes of any value. Zero or more.
 *   TUNNEL\n                switches to raw mode: every following byte is
 *                           forwarded unparsed, whatever it contains.
 *   <raw bytes>             until the client half-closes (shutdown write).
 *
 * Every header line (ROUTE, TUNNEL, frame length) is at most --max-line bytes
 * (default 1024) before its '\n', and a frame at most --max-frame bytes
 * (default 65536).
 *
 * What the destination receives: the client's stream unchanged, ROUTE line
 * included. Each token (ROUTE line, whole frame, TUNNEL line) is peeked at
 * without being consumed until it is complete, then split off the read buffer
 * as its own owned slice (bh_buf_split_prefix: no copy) and queued on the
 * upstream's bh_writeq. At TUNNEL the bytes already read behind the marker go
 * first, then each read as one slice (bh_buf_freeze), so nothing is lost or
 * reordered at the mode switch however the input was fragmented. Upstream
 * bytes are forwarded raw to the client. After the client's EOF the proxy
 * flushes and half-closes the upstream; on the upstream's EOF it flushes and
 * closes the client. The demo sink (and the bench harness sink) replies
 * "OK <nbytes> <fnv1a64 as 16 hex digits>\n" over everything it received.
 *
 * ERRORS (proxy -> client): the proxy writes one line, shuts down its side,
 * discards further input until the client's EOF (at most 1 MiB), then closes.
 * Any upstream of that client is reset. Other clients are unaffected.
 *   ERR unknown destination <name>\n   ROUTE names no configured destination
 *   ERR header too long\n              no '\n' within --max-line bytes
 *   ERR frame too long\n               frame length above --max-frame (the
 *                                      frame is never buffered or allocated)
 *   ERR bad header\n                   a line that is none of the above
 *   ERR no route\n                     a frame or TUNNEL before any ROUTE
 *   ERR route already set\n            a second ROUTE
 *   ERR upstream unavailable\n         the destination refused the connection
 * A client that fails (reset) or ends inside a frame is dropped silently and
 * its upstream is reset (RST), not closed. Caveat: a destination reading with
 * libuv may still see an RST that arrives right behind data as UV_EOF (libuv
 * turns POLLHUP after a partial read into EOF), so only framing can prove a
 * stream complete: a frame cut short is always detected, a raw tunnel cut
 * short is not, unless the tunnelled protocol has its own end marker.
 *
 * BACKPRESSURE: when a destination's queue refuses a slice (BH_EFULL: more
 * than --write-budget bytes queued), the proxy keeps that slice, stops
 * reading the client (bh_reader_stop) and resumes from the queue's drain
 * callback (below half the budget). Memory per connection stays bounded by
 * one read buffer (max(max_line + 1 + max_frame, read_reserve)), one held
 * slice and the write budget, per direction.
 *
 * HARNESS COMPATIBILITY (bench/harness, see docs/design.md): `proxy` accepts
 * --upstream IPV4:PORT (every connection routed at accept to that one
 * destination, no ROUTE line needed) and --line-frames (every '\n'-terminated
 * line that is not ROUTE/TUNNEL is one frame), prints "listening PORT", and
 * exits 0 on SIGINT/SIGTERM after closing its sockets.
 *
 * The parts live in examples/content_routing/: parser.c (the protocol),
 * proxy.c, sink.c, demo.c (clients, verification, summary, allocation-failure
 * injection), addr.c (address helpers). */
#include "content_routing/content_routing.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- command line ---------------------------------------------------------
 */

static const char usage[] =
    "usage:\n"
    "  content_routing proxy --listen IPV4:PORT (--dest NAME=IPV4:PORT ... | "
    "--upstream IPV4:PORT)\n"
    "  content_routing sink  --listen IPV4:PORT --name NAME\n"
    "  content_routing demo  [options]\n"
    "  content_routing --help\n"
    "\n"
    "Sizes accept a K, M or G suffix (KiB, MiB, GiB). The protocol is "
    "described at the top of\n"
    "examples/content_routing.c.\n"
    "\n"
    "proxy options (also accepted by demo, which applies them to its proxy):\n"
    "  --listen IPV4:PORT        address to accept clients on; port 0 picks "
    "one (proxy, sink)\n"
    "  --dest NAME=IPV4:PORT     a destination (repeatable, at most 16)\n"
    "  --upstream IPV4:PORT      harness mode: route every connection to this "
    "destination\n"
    "  --line-frames             harness mode: every other line is a frame by "
    "itself\n"
    "  --read-reserve BYTES      spare space per read (default 16K)\n"
    "  --write-budget BYTES      bytes queued per direction before reading "
    "pauses (default 256K)\n"
    "  --max-line BYTES          longest header line (default 1024)\n"
    "  --max-frame BYTES         largest payload frame (default 64K)\n"
    "  --upstream-sndbuf BYTES   SO_SNDBUF of upstream sockets (default: "
    "kernel's)\n"
    "  --header-timeout-ms MS    close a client whose first line (ROUTE) is "
    "not complete MS ms\n"
    "                            after accept; 0 = never (default 10000)\n"
    "  --idle-timeout-ms MS      close a session when a side sends nothing for "
    "MS ms; 0 = never\n"
    "                            (default 300000)\n"
    "  --verbose                 log how each session ends on stderr\n"
    "\n"
    "sink options:\n"
    "  --name NAME               destination name expected in ROUTE lines\n"
    "  --pause-ms MS             stop reading MS ms after each read (slow "
    "sink)\n"
    "  --rcvbuf BYTES            SO_RCVBUF of accepted sockets\n"
    "\n"
    "demo options:\n"
    "  --conns N                 client connections (default 8)\n"
    "  --frames N                payload frames per client (default 64)\n"
    "  --frame-bytes N           payload bytes per frame (default 63)\n"
    "  --tunnel-bytes N          raw bytes per client after TUNNEL (default "
    "1M)\n"
    "  --write-size N            bytes per client write (default 1024)\n"
    "  --seed N                  seed of the pseudo-random payloads (default "
    "1)\n"
    "  --disconnect-mid-frame K  K clients close (FIN) in the middle of a "
    "frame\n"
    "  --disconnect-mid-tunnel K K clients reset (RST) in the middle of the "
    "tunnel\n"
    "  --bad-route K             K clients route to an unknown destination "
    "(expect ERR)\n"
    "  --long-header K           K clients send a header line above --max-line "
    "(expect ERR)\n"
    "  --long-frame K            K clients declare a frame above --max-frame "
    "(expect ERR)\n"
    "  --sink-pause-ms MS        sinks stop reading MS ms after each read "
    "(backpressure)\n"
    "  --sink-rcvbuf BYTES       SO_RCVBUF of the sinks' sockets\n"
    "  --timeout-ms MS           give up after MS ms (default 60000)\n"
    "  --duration-s S            with --proxy: good clients reconnect after each "
    "verified\n"
    "                            reply until S seconds have passed (soak)\n"
    "  --count-allocs            count library allocations (bh_set_allocator) and "
    "report\n"
    "                            them, with the blocks still live at exit\n"
    "  --fail-alloc N            fail the Nth library allocation; exit 3 when the "
    "connections\n"
    "                            that hit it failed cleanly (BH_ENOMEM logged, no "
    "wrong byte,\n"
    "                            no leak, tickets once) and all others verified\n"
    "  --proxy IPV4:PORT         run only the clients, against a running proxy "
    "whose\n"
    "                            destinations alpha and beta are "
    "content_routing sinks;\n"
    "                            good clients are verified by the forwarded "
    "sink replies\n"
    "Exit status: 0 when every good connection verified and every fault was "
    "handled,\n"
    "3 when an injected allocation failure made connections fail cleanly, 1 "
    "otherwise.\n";

typedef struct args {
    int argc, i;
    char **argv;
} args;

static int die(const char *fmt, const char *a)
{
    fprintf(stderr, "content_routing: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n(see content_routing --help)\n");
    return 2;
}

/* The value of the current flag: "--flag=value" or "--flag value". */
static const char *value(args *a)
{
    const char *eq = strchr(a->argv[a->i], '=');
    if (eq)
        return eq + 1;
    if (a->i + 1 >= a->argc)
        return NULL;
    return a->argv[++a->i];
}

/* Parses a size with an optional K/M/G suffix into *out (<= max). */
static int parse_size(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end || v > (max >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* Flag name without a trailing "=value". */
static int is_flag(const args *a, const char *name)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

#define SIZE_FLAG(name, dst, max)                                                                  \
    if (is_flag(a, name)) {                                                                        \
        uint64_t v_;                                                                               \
        if (parse_size(value(a), (max), &v_) != 0)                                                 \
            return die("bad value for %s", name);                                                  \
        dst = v_;                                                                                  \
        continue;                                                                                  \
    }

#define GIB ((uint64_t)1 << 30)

static int add_dest(cr_proxy_config *pc, const char *spec)
{
    const char *eq = spec ? strchr(spec, '=') : NULL;
    if (!eq || eq == spec || (size_t)(eq - spec) > CR_MAX_NAME || pc->ndests == CR_MAX_DESTS)
        return -1;
    cr_dest *d = &pc->dests[pc->ndests];
    memcpy(d->name, spec, (size_t)(eq - spec));
    d->name[eq - spec] = '\0';
    if (cr_parse_addr(eq + 1, &d->addr) != 0)
        return -1;
    pc->ndests++;
    return 0;
}

/* Options shared by proxy and demo. Returns 1 when the flag was taken, 0
 * when unknown, 2 on a bad value. */
static int proxy_flag(args *a, cr_proxy_config *pc)
{
    uint64_t v;
    if (is_flag(a, "--dest")) {
        if (add_dest(pc, value(a)) != 0)
            return die("bad --dest (NAME=IPV4:PORT, at most 16): %s", a->argv[a->i]);
        return 1;
    }
    if (is_flag(a, "--upstream")) {
        const char *s = value(a);
        if (!s || pc->ndests == CR_MAX_DESTS)
            return die("bad value for %s", "--upstream");
        cr_dest *d = &pc->dests[pc->ndests];
        snprintf(d->name, sizeof d->name, "upstream");
        if (cr_parse_addr(s, &d->addr) != 0)
            return die("bad address for --upstream: %s", s);
        pc->default_dest = (int)pc->ndests++;
        return 1;
    }
    if (is_flag(a, "--line-frames")) {
        pc->line_frames = 1;
        return 1;
    }
    if (is_flag(a, "--verbose")) {
        pc->verbose = 1;
        return 1;
    }
    static const struct {
        const char *name;
        size_t off;
        uint64_t max;
    } sizes[] = {
        {"--read-reserve", offsetof(cr_proxy_config, read_reserve), GIB},
        {"--write-budget", offsetof(cr_proxy_config, write_budget), 64 * GIB},
        {"--max-line", offsetof(cr_proxy_config, max_line), GIB},
        {"--max-frame", offsetof(cr_proxy_config, max_frame), GIB},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (is_flag(a, sizes[i].name)) {
            if (parse_size(value(a), sizes[i].max, &v) != 0)
                return die("bad value for %s", sizes[i].name);
            *(size_t *)(void *)((char *)pc + sizes[i].off) = (size_t)v;
            return 1;
        }
    }
    if (is_flag(a, "--upstream-sndbuf")) {
        if (parse_size(value(a), GIB, &v) != 0)
            return die("bad value for %s", "--upstream-sndbuf");
        pc->upstream_sndbuf = (int)v;
        return 1;
    }
    if (is_flag(a, "--header-timeout-ms") || is_flag(a, "--idle-timeout-ms")) {
        int header = is_flag(a, "--header-timeout-ms");
        if (parse_size(value(a), UINT32_MAX, &v) != 0)
            return die("bad value for %s", header ? "--header-timeout-ms" : "--idle-timeout-ms");
        *(header ? &pc->header_timeout_ms : &pc->idle_timeout_ms) = v;
        return 1;
    }
    return 0;
}

/* ---- proxy and sink modes --------------------------------------------------
 */

typedef struct service {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    cr_proxy *proxy;
    cr_sink *sink;
} service;

static void on_signal_closed(uv_handle_t *h) { (void)h; }

static void on_signal(uv_signal_t *sig, int signum)
{
    service *sv = sig->data;
    (void)signum;
    if (sv->proxy)
        cr_proxy_stop(sv->proxy);
    if (sv->sink)
        cr_sink_stop(sv->sink);
    uv_close((uv_handle_t *)&sv->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&sv->sigterm, on_signal_closed);
}

/* Runs a proxy or a sink until SIGINT/SIGTERM. */
static int serve(const struct sockaddr_in *listen, const cr_proxy_config *pc,
                 const cr_sink_config *sc)
{
    service sv;
    memset(&sv, 0, sizeof sv);
    if (uv_loop_init(&sv.loop) != 0)
        return 1;
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sigterm);
    sv.sigint.data = sv.sigterm.data = &sv;
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);

    int port = 0;
    int rc = pc ? cr_proxy_start(&sv.proxy, &sv.loop, pc, listen, &port)
                : cr_sink_start(&sv.sink, &sv.loop, sc, listen, &port);
    if (rc == 0) {
        printf("listening %d\n", port);
        fflush(stdout);
    } else {
        fprintf(stderr, "content_routing: cannot listen: %s\n", bh_strerror(rc));
        on_signal(&sv.sigint, 0);
    }
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    if (sv.proxy && pc->verbose) {
        struct cr_proxy_stats st;
        cr_proxy_get_stats(sv.proxy, &st);
        fprintf(stderr,
                "proxy: %" PRIu64 " sessions: %" PRIu64 " completed, %" PRIu64 " rejected, %" PRIu64
                " aborted; %" PRIu64 " frames, %" PRIu64 " pauses\n",
                st.accepted, st.completed, st.rejected, st.aborted, st.frames, st.pauses);
    }
    int close_rc = uv_loop_close(&sv.loop);
    cr_proxy_free(sv.proxy);
    cr_sink_free(sv.sink);
    if (close_rc != 0) {
        fprintf(stderr, "content_routing: uv_loop_close: %s\n", uv_strerror(close_rc));
        return 1;
    }
    return rc == 0 ? 0 : 1;
}

static int main_proxy(args *a)
{
    cr_proxy_config pc;
    cr_proxy_config_default(&pc);
    const char *listen = NULL;
    for (a->i = 2; a->i < a->argc; a->i++) {
        if (is_flag(a, "--listen")) {
            listen = value(a);
            continue;
        }
        int r = proxy_flag(a, &pc);
        if (r == 2)
            return 2;
        if (r == 0)
            return die("unknown proxy option %s", a->argv[a->i]);
    }
    struct sockaddr_in addr;
    if (!listen || cr_parse_addr(listen, &addr) != 0)
        return die("proxy needs --listen IPV4:PORT%s", "");
    char why[200];
    if (cr_proxy_config_check(&pc, why, sizeof why) != 0)
        return die("%s", why);
    return serve(&addr, &pc, NULL);
}

static int main_sink(args *a)
{
    cr_sink_config sc = {NULL, 1024, (size_t)64 * 1024, 0, 0, 0};
    const char *listen = NULL;
    for (a->i = 2; a->i < a->argc; a->i++) {
        uint64_t v;
        if (is_flag(a, "--listen")) {
            listen = value(a);
        } else if (is_flag(a, "--name")) {
            sc.name = value(a);
        } else if (is_flag(a, "--max-line") || is_flag(a, "--max-frame") ||
                   is_flag(a, "--read-reserve") || is_flag(a, "--pause-ms") ||
                   is_flag(a, "--rcvbuf")) {
            const char *flag = a->argv[a->i];
            if (parse_size(value(a), GIB, &v) != 0)
                return die("bad value for %s", flag);
            if (strncmp(flag, "--max-line", 10) == 0)
                sc.max_line = (size_t)v;
            else if (strncmp(flag, "--max-frame", 11) == 0)
                sc.max_frame = (size_t)v;
            else if (strncmp(flag, "--read-reserve", 14) == 0)
                sc.read_reserve = (size_t)v;
            else if (strncmp(flag, "--pause-ms", 10) == 0)
                sc.pause_ms = (unsigned)v;
            else
                sc.rcvbuf = (int)v;
        } else {
            return die("unknown sink option %s", a->argv[a->i]);
        }
    }
    struct sockaddr_in addr;
    if (!listen || cr_parse_addr(listen, &addr) != 0)
        return die("sink needs --listen IPV4:PORT%s", "");
    if (!sc.name || !*sc.name || strlen(sc.name) > CR_MAX_NAME)
        return die("sink needs --name NAME (1-64 characters)%s", "");
    return serve(&addr, NULL, &sc);
}

static int main_demo(args *a)
{
    cr_demo_config dc;
    cr_demo_config_default(&dc);
    for (a->i = 2; a->i < a->argc; a->i++) {
        SIZE_FLAG("--conns", dc.conns, 100000)
        SIZE_FLAG("--frames", dc.frames, 1u << 24)
        SIZE_FLAG("--frame-bytes", dc.frame_bytes, GIB)
        SIZE_FLAG("--tunnel-bytes", dc.tunnel_bytes, 64 * GIB)
        SIZE_FLAG("--write-size", dc.write_size, GIB)
        SIZE_FLAG("--seed", dc.seed, UINT64_MAX)
        SIZE_FLAG("--disconnect-mid-frame", dc.mid_frame, 100000)
        SIZE_FLAG("--disconnect-mid-tunnel", dc.mid_tunnel, 100000)
        SIZE_FLAG("--bad-route", dc.bad_route, 100000)
        SIZE_FLAG("--long-header", dc.long_header, 100000)
        SIZE_FLAG("--long-frame", dc.long_frame, 100000)
        SIZE_FLAG("--sink-pause-ms", dc.sink_pause_ms, 60000)
        SIZE_FLAG("--sink-rcvbuf", dc.sink_rcvbuf, GIB)
        SIZE_FLAG("--timeout-ms", dc.timeout_ms, 3600000)
        SIZE_FLAG("--duration-s", dc.duration_s, 86400)
        SIZE_FLAG("--fail-alloc", dc.fail_alloc, SIZE_MAX)
        if (is_flag(a, "--count-allocs")) {
            dc.count_allocs = 1;
            continue;
        }
        if (is_flag(a, "--proxy")) {
            const char *s = value(a);
            if (!s || cr_parse_addr(s, &dc.ext_proxy) != 0)
                return die("bad address for --proxy: %s", s ? s : "(none)");
            dc.external = 1;
            continue;
        }
        if (is_flag(a, "--dest") || is_flag(a, "--upstream") || is_flag(a, "--listen"))
            return die("%s is not a demo option (the demo starts its own sinks)", a->argv[a->i]);
        int r = proxy_flag(a, &dc.proxy);
        if (r == 2)
            return 2;
        if (r == 0)
            return die("unknown demo option %s", a->argv[a->i]);
    }
    if (dc.write_size == 0 || dc.conns == 0)
        return die("--conns and --write-size must be at least 1%s", "");
    if (dc.proxy.line_frames)
        return die("--line-frames is a proxy option (the demo sends length frames)%s", "");
    return cr_demo_run(&dc);
}

int main(int argc, char **argv)
{
    args a = {argc, 1, argv};
    /* A peer that resets must not kill the process through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    if (strcmp(argv[1], "proxy") == 0)
        return main_proxy(&a);
    if (strcmp(argv[1], "sink") == 0)
        return main_sink(&a);
    if (strcmp(argv[1], "demo") == 0)
        return main_demo(&a);
    return die("unknown mode %s (proxy, sink or demo)", argv[1]);
}
