/* content_routing.c - a content-routing TCP proxy on libuv built from
 * bh_reader, bh_buf and bh_writeq, with a self-verifying demo.
 *
 *   content_routing proxy --listen 127.0.0.1:PORT --dest NAME=ADDR ...
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
 * upstream's bh_writeq. At TUNNEL, once the upstream is connected and both
 * queues have drained, a bh_tunnel takes both sockets: the bytes already read
 * behind the marker go first (no copy), then it relays both ways (splice(2)
 * on Linux for bulk), so nothing is lost or reordered at the mode switch
 * however the input was fragmented. After the client's EOF the upstream is
 * half-closed once flushed, and the other way round; the session ends when
 * both directions have ended. The demo sink (and the bench harness sink) replies
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
 * its upstream is reset (RST), not closed; in the tunnel the same holds both
 * ways. libuv reports an RST that arrives right behind data as UV_EOF (it
 * turns POLLHUP after a partial read into EOF); bh_reader (so the proxy and
 * the sink) checks the socket's error at EOF and reports UV_ECONNRESET, so a
 * client that resets right after its tunnel data is passed on as a reset and
 * the sink counts the stream as aborted, never as complete.
 *
 * BACKPRESSURE: when a destination's queue refuses a slice (BH_EFULL: more
 * than --write-budget bytes queued), the proxy keeps that slice, stops
 * reading the client (bh_reader_stop) and resumes from the queue's drain
 * callback (below half the budget). Memory per connection stays bounded by
 * one read buffer (max(max_line + 1 + max_frame, read_reserve)), one held
 * slice and the write budget, per direction.
 *
 * HARNESS COMPATIBILITY (bench/harness, see docs/design.md): `proxy` accepts
 * --upstream ADDR (every connection routed at accept to that one
 * destination, no ROUTE line needed) and --line-frames (every '\n'-terminated
 * line that is not ROUTE/TUNNEL is one frame), prints "listening PORT", and
 * exits 0 on SIGINT/SIGTERM after closing its sockets.
 *
 * The parts live in examples/content_routing/: parser.c (the protocol),
 * proxy.c, sink.c, demo.c (clients, verification, summary, allocation-failure
 * injection), addr.c (address helpers). */
#include "content_routing/content_routing.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- command line ---------------------------------------------------------
 */

static const char usage[] =
    "usage:\n"
    "  content_routing proxy --listen ADDR (--dest NAME=ADDR ... | "
    "--upstream ADDR)\n"
    "  content_routing sink  --listen ADDR --name NAME\n"
    "  content_routing demo  [options]\n"
    "  content_routing --help | --version\n"
    "\n"
    "Counts and sizes accept a K, M or G suffix (KiB, MiB, GiB); ADDR is "
    "IPV4:PORT or [IPV6]:PORT.\nThe protocol is "
    "described at the top of\n"
    "examples/content_routing.c.\n"
    "\n"
    "proxy options (also accepted by demo, which applies them to its proxy):\n"
    "  --listen ADDR             address to accept clients on; port 0 picks "
    "one (proxy, sink)\n"
    "  --dest NAME=ADDR          a destination (repeatable, at most 16)\n"
    "  --upstream ADDR           harness mode: route every connection to this "
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
    "  --idle-timeout-ms MS      close a session when the client sends nothing, "
    "a side reads\n"
    "                            nothing queued for it, or the destination owes "
    "its reply and\n"
    "                            sends nothing, for MS ms; 0 = never (default "
    "300000)\n"
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
    "                            reply until S seconds after every client had\n"
    "                            its first verified reply (soak)\n"
    "  --count-allocs            count library allocations (bh_set_allocator) and "
    "report\n"
    "                            them, with the blocks still live at exit\n"
    "  --fail-alloc N            fail the Nth library allocation; exit 3 when the "
    "connections\n"
    "                            that hit it failed cleanly (BH_ENOMEM logged, no "
    "wrong byte,\n"
    "                            no leak, tickets once) and all others verified\n"
    "  --proxy ADDR              run only the clients, against a running proxy "
    "whose\n"
    "                            destinations alpha and beta are "
    "content_routing sinks;\n"
    "                            good clients are verified by the forwarded "
    "sink replies\n"
    "Exit status: 0 when every good connection verified and every fault was "
    "handled,\n"
    "3 when an injected allocation failure made connections fail cleanly, 1 "
    "otherwise.\n";

enum {
    O_LISTEN = 256, O_DEST, O_UPSTREAM, O_LINE_FRAMES, O_VERBOSE, O_READ_RESERVE,
    O_WRITE_BUDGET, O_MAX_LINE, O_MAX_FRAME, O_UPSTREAM_SNDBUF, O_HEADER_TIMEOUT, O_IDLE_TIMEOUT,
    O_NAME, O_PAUSE_MS, O_RCVBUF,
    O_CONNS, O_FRAMES, O_FRAME_BYTES, O_TUNNEL_BYTES, O_WRITE_SIZE, O_SEED, O_MID_FRAME,
    O_MID_TUNNEL, O_BAD_ROUTE, O_LONG_HEADER, O_LONG_FRAME, O_SINK_PAUSE_MS, O_SINK_RCVBUF,
    O_TIMEOUT_MS, O_DURATION_S, O_FAIL_ALLOC, O_COUNT_ALLOCS, O_PROXY
};

#define GIB CLI_GIB
#define ARG required_argument
#define COMMON_OPTIONS CLI_STANDARD_OPTIONS
#define PROXY_OPTIONS                                                                              \
    {"dest", ARG, NULL, O_DEST}, {"upstream", ARG, NULL, O_UPSTREAM},                             \
        {"line-frames", no_argument, NULL, O_LINE_FRAMES},                                         \
        {"verbose", no_argument, NULL, O_VERBOSE},                                                 \
        {"read-reserve", ARG, NULL, O_READ_RESERVE},                                               \
        {"write-budget", ARG, NULL, O_WRITE_BUDGET}, {"max-line", ARG, NULL, O_MAX_LINE},          \
        {"max-frame", ARG, NULL, O_MAX_FRAME},                                                     \
        {"upstream-sndbuf", ARG, NULL, O_UPSTREAM_SNDBUF},                                         \
        {"header-timeout-ms", ARG, NULL, O_HEADER_TIMEOUT},                                        \
        {"idle-timeout-ms", ARG, NULL, O_IDLE_TIMEOUT}

static const struct option proxy_options[] = {
    {"listen", ARG, NULL, O_LISTEN}, PROXY_OPTIONS, COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static const struct option sink_options[] = {
    {"listen", ARG, NULL, O_LISTEN},       {"name", ARG, NULL, O_NAME},
    {"max-line", ARG, NULL, O_MAX_LINE},   {"max-frame", ARG, NULL, O_MAX_FRAME},
    {"read-reserve", ARG, NULL, O_READ_RESERVE}, {"pause-ms", ARG, NULL, O_PAUSE_MS},
    {"rcvbuf", ARG, NULL, O_RCVBUF},       COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

static const struct option demo_options[] = {
    {"conns", ARG, NULL, O_CONNS},
    {"frames", ARG, NULL, O_FRAMES},
    {"frame-bytes", ARG, NULL, O_FRAME_BYTES},
    {"tunnel-bytes", ARG, NULL, O_TUNNEL_BYTES},
    {"write-size", ARG, NULL, O_WRITE_SIZE},
    {"seed", ARG, NULL, O_SEED},
    {"disconnect-mid-frame", ARG, NULL, O_MID_FRAME},
    {"disconnect-mid-tunnel", ARG, NULL, O_MID_TUNNEL},
    {"bad-route", ARG, NULL, O_BAD_ROUTE},
    {"long-header", ARG, NULL, O_LONG_HEADER},
    {"long-frame", ARG, NULL, O_LONG_FRAME},
    {"sink-pause-ms", ARG, NULL, O_SINK_PAUSE_MS},
    {"sink-rcvbuf", ARG, NULL, O_SINK_RCVBUF},
    {"timeout-ms", ARG, NULL, O_TIMEOUT_MS},
    {"duration-s", ARG, NULL, O_DURATION_S},
    {"fail-alloc", ARG, NULL, O_FAIL_ALLOC},
    {"count-allocs", no_argument, NULL, O_COUNT_ALLOCS},
    {"proxy", ARG, NULL, O_PROXY},
    PROXY_OPTIONS,
    COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

static void print_usage(FILE *out) { fputs(usage, out); }

/* The next option after the mode word (cli_next_option()), -1 at the end. */
static int next_option(int argc, char **argv, const struct option *options)
{
    return cli_next_option(argc, argv, options, print_usage);
}

/* "NAME=ADDR" appended to pc's destinations. */
static void add_dest(cr_proxy_config *pc, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) > CR_MAX_NAME)
        cli_die("--dest: '%s' is not NAME=ADDR with a name of 1-%d characters", spec,
                CR_MAX_NAME);
    if (pc->ndests == CR_MAX_DESTS)
        cli_die("--dest: at most %d destinations", CR_MAX_DESTS);
    cr_dest *d = &pc->dests[pc->ndests];
    memcpy(d->name, spec, (size_t)(eq - spec));
    d->name[eq - spec] = '\0';
    cli_addr("--dest", eq + 1, &d->addr);
    pc->ndests++;
}

/* Options shared by proxy and demo. Returns 1 when c was one of them. */
static int proxy_option(int c, cr_proxy_config *pc)
{
    switch (c) {
    case O_DEST:
        add_dest(pc, optarg);
        return 1;
    case O_UPSTREAM: {
        if (pc->ndests == CR_MAX_DESTS)
            cli_die("--upstream: at most %d destinations", CR_MAX_DESTS);
        cr_dest *d = &pc->dests[pc->ndests];
        snprintf(d->name, sizeof d->name, "upstream");
        cli_addr("--upstream", optarg, &d->addr);
        pc->default_dest = (int)pc->ndests++;
        return 1;
    }
    case O_LINE_FRAMES:
        pc->line_frames = 1;
        return 1;
    case O_VERBOSE:
        pc->verbose = 1;
        return 1;
    case O_READ_RESERVE:
        pc->read_reserve = (size_t)cli_size("--read-reserve", optarg, 0, GIB);
        return 1;
    case O_WRITE_BUDGET:
        pc->write_budget = (size_t)cli_size("--write-budget", optarg, 0, 64 * GIB);
        return 1;
    case O_MAX_LINE:
        pc->max_line = (size_t)cli_size("--max-line", optarg, 0, GIB);
        return 1;
    case O_MAX_FRAME:
        pc->max_frame = (size_t)cli_size("--max-frame", optarg, 0, GIB);
        return 1;
    case O_UPSTREAM_SNDBUF:
        pc->upstream_sndbuf = (int)cli_size("--upstream-sndbuf", optarg, 0, GIB);
        return 1;
    case O_HEADER_TIMEOUT:
        pc->header_timeout_ms = cli_size("--header-timeout-ms", optarg, 0, UINT32_MAX);
        return 1;
    case O_IDLE_TIMEOUT:
        pc->idle_timeout_ms = cli_size("--idle-timeout-ms", optarg, 0, UINT32_MAX);
        return 1;
    default:
        return 0;
    }
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
static int serve(const struct sockaddr *listen, const cr_proxy_config *pc,
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

static int main_proxy(int argc, char **argv)
{
    cr_proxy_config pc;
    cr_proxy_config_default(&pc);
    struct sockaddr_storage addr;
    int have_listen = 0, c;
    while ((c = next_option(argc, argv, proxy_options)) != -1) {
        if (c == O_LISTEN) {
            cli_addr("--listen", optarg, &addr);
            have_listen = 1;
        } else {
            proxy_option(c, &pc);
        }
    }
    if (!have_listen)
        cli_die("proxy needs --listen ADDR");
    char why[200];
    if (cr_proxy_config_check(&pc, why, sizeof why) != 0)
        cli_die("%s", why);
    return serve((const struct sockaddr *)&addr, &pc, NULL);
}

static int main_sink(int argc, char **argv)
{
    cr_sink_config sc = {NULL, 1024, (size_t)64 * 1024, 0, 0, 0};
    struct sockaddr_storage addr;
    int have_listen = 0, c;
    while ((c = next_option(argc, argv, sink_options)) != -1) {
        switch (c) {
        case O_LISTEN:
            cli_addr("--listen", optarg, &addr);
            have_listen = 1;
            break;
        case O_NAME:
            sc.name = optarg;
            break;
        case O_MAX_LINE:
            sc.max_line = (size_t)cli_size("--max-line", optarg, 0, GIB);
            break;
        case O_MAX_FRAME:
            sc.max_frame = (size_t)cli_size("--max-frame", optarg, 0, GIB);
            break;
        case O_READ_RESERVE:
            sc.read_reserve = (size_t)cli_size("--read-reserve", optarg, 0, GIB);
            break;
        case O_PAUSE_MS:
            sc.pause_ms = (unsigned)cli_size("--pause-ms", optarg, 0, 3600000);
            break;
        case O_RCVBUF:
            sc.rcvbuf = (int)cli_size("--rcvbuf", optarg, 0, GIB);
            break;
        }
    }
    if (!have_listen)
        cli_die("sink needs --listen ADDR");
    if (!sc.name || !*sc.name || strlen(sc.name) > CR_MAX_NAME)
        cli_die("sink needs --name NAME (1-%d characters)", CR_MAX_NAME);
    return serve((const struct sockaddr *)&addr, NULL, &sc);
}

static int main_demo(int argc, char **argv)
{
    cr_demo_config dc;
    cr_demo_config_default(&dc);
    int c;
    while ((c = next_option(argc, argv, demo_options)) != -1) {
        switch (c) {
        case O_CONNS:
            dc.conns = (size_t)cli_size("--conns", optarg, 1, 100000);
            break;
        case O_FRAMES:
            dc.frames = (size_t)cli_size("--frames", optarg, 0, 1u << 24);
            break;
        case O_FRAME_BYTES:
            dc.frame_bytes = (size_t)cli_size("--frame-bytes", optarg, 0, GIB);
            break;
        case O_TUNNEL_BYTES:
            dc.tunnel_bytes = (size_t)cli_size("--tunnel-bytes", optarg, 0, 64 * GIB);
            break;
        case O_WRITE_SIZE:
            dc.write_size = (size_t)cli_size("--write-size", optarg, 1, GIB);
            break;
        case O_SEED:
            dc.seed = cli_size("--seed", optarg, 0, UINT64_MAX);
            break;
        case O_MID_FRAME:
            dc.mid_frame = (size_t)cli_size("--disconnect-mid-frame", optarg, 0, 100000);
            break;
        case O_MID_TUNNEL:
            dc.mid_tunnel = (size_t)cli_size("--disconnect-mid-tunnel", optarg, 0, 100000);
            break;
        case O_BAD_ROUTE:
            dc.bad_route = (size_t)cli_size("--bad-route", optarg, 0, 100000);
            break;
        case O_LONG_HEADER:
            dc.long_header = (size_t)cli_size("--long-header", optarg, 0, 100000);
            break;
        case O_LONG_FRAME:
            dc.long_frame = (size_t)cli_size("--long-frame", optarg, 0, 100000);
            break;
        case O_SINK_PAUSE_MS:
            dc.sink_pause_ms = (unsigned)cli_size("--sink-pause-ms", optarg, 0, 60000);
            break;
        case O_SINK_RCVBUF:
            dc.sink_rcvbuf = (int)cli_size("--sink-rcvbuf", optarg, 0, GIB);
            break;
        case O_TIMEOUT_MS:
            dc.timeout_ms = (unsigned)cli_size("--timeout-ms", optarg, 0, 3600000);
            break;
        case O_DURATION_S:
            dc.duration_s = (unsigned)cli_size("--duration-s", optarg, 0, 86400);
            break;
        case O_FAIL_ALLOC:
            dc.fail_alloc = (size_t)cli_size("--fail-alloc", optarg, 0, SIZE_MAX);
            break;
        case O_COUNT_ALLOCS:
            dc.count_allocs = 1;
            break;
        case O_PROXY:
            cli_addr("--proxy", optarg, &dc.ext_proxy);
            dc.external = 1;
            break;
        default:
            proxy_option(c, &dc.proxy);
            break;
        }
    }
    if (dc.proxy.line_frames)
        cli_die("--line-frames is a proxy option (the demo sends length frames)");
    if (dc.proxy.ndests > 0)
        cli_die("--dest and --upstream are not demo options (the demo starts its own sinks)");
    return cr_demo_run(&dc);
}

int main(int argc, char **argv)
{
    cli_init("content_routing");
    /* A peer that resets must not kill the process through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argc >= 2 ? argv[1] : "";
    /* getopt_long() scans the options after the mode word. */
    argc--, argv++;
    if (strcmp(mode, "proxy") == 0)
        return main_proxy(argc, argv);
    if (strcmp(mode, "sink") == 0)
        return main_sink(argc, argv);
    if (strcmp(mode, "demo") == 0)
        return main_demo(argc, argv);
    static const struct option top_options[] = {COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    argc++, argv--;
    if (argc >= 2 && argv[1][0] == '-') {
        next_option(argc, argv, top_options);
        cli_die("unexpected argument '%s'", argv[1]);
    }
    fputs(usage, stderr);
    return 2;
}
