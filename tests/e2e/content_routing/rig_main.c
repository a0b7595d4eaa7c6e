/* rig_main.c - content_routing_rig: the test side of the content_routing
 * example, one program with two modes.
 *
 *   content_routing_rig sink --listen ADDR --name NAME [--pause-ms MS ...]
 *   content_routing_rig demo [--conns N --write-size N --tunnel-bytes N ...]
 *
 * `sink` is a destination that checks the route protocol and replies
 * "OK <nbytes> <fnv1a64 as 16 hex digits>\n" over everything it received
 * (sink.c). `demo` runs the example's proxy (content_routing.h), two sinks
 * and clients in one process over loopback TCP and verifies every byte
 * end to end, optionally with faulty clients and an injected allocation
 * failure (demo.c); with --proxy it runs only the clients, against a
 * content_routing process whose destinations alpha and beta are sinks. */
#include "rig.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage:\n"
    "  content_routing_rig sink --listen ADDR --name NAME [sink options]\n"
    "  content_routing_rig demo [demo options]\n"
    "  content_routing_rig --help | --version\n"
    "Counts and sizes accept a K, M or G suffix (KiB, MiB, GiB); ADDR is IPV4:PORT or\n"
    "[IPV6]:PORT.\n"
    "\n"
    "sink options:\n"
    "  --listen ADDR             address to accept on; port 0 picks one\n"
    "  --name NAME               destination name expected in ROUTE lines\n"
    "  --max-line, --max-frame, --read-reserve BYTES   as the proxy's\n"
    "  --pause-ms MS             stop reading MS ms after each read (slow sink)\n"
    "  --rcvbuf BYTES            SO_RCVBUF of accepted sockets\n"
    "\n"
    "demo options (and the proxy options of content_routing --help but --dest,\n"
    "--upstream and --line-frames, applied to the demo's proxy):\n"
    "  --conns N                 client connections (default 8)\n"
    "  --frames N                payload frames per client (default 64)\n"
    "  --frame-bytes N           payload bytes per frame (default 63)\n"
    "  --tunnel-bytes N          raw bytes per client after TUNNEL (default 1M)\n"
    "  --write-size N            bytes per client write (default 1024)\n"
    "  --seed N                  seed of the pseudo-random payloads (default 1)\n"
    "  --disconnect-mid-frame K  K clients close (FIN) in the middle of a frame\n"
    "  --disconnect-mid-tunnel K K clients reset (RST) in the middle of the tunnel\n"
    "  --bad-route K             K clients route to an unknown destination (expect ERR)\n"
    "  --long-header K           K clients send a header line above --max-line (expect ERR)\n"
    "  --long-frame K            K clients declare a frame above --max-frame (expect ERR)\n"
    "  --sink-pause-ms MS        sinks stop reading MS ms after each read (backpressure)\n"
    "  --sink-rcvbuf BYTES       SO_RCVBUF of the sinks' sockets\n"
    "  --timeout-ms MS           give up after MS ms (default 60000)\n"
    "  --duration-s S            with --proxy: good clients reconnect after each verified\n"
    "                            reply until S seconds after every client had its first\n"
    "                            verified reply (soak)\n"
    "  --count-allocs            count library allocations (bh_set_allocator) and report\n"
    "                            them, with the blocks still live at exit\n"
    "  --fail-alloc N            fail the Nth library allocation; exit 3 when the\n"
    "                            connections that hit it failed cleanly (BH_ENOMEM logged,\n"
    "                            no wrong byte, no leak, tickets once) and all others\n"
    "                            verified\n"
    "  --proxy ADDR              run only the clients, against a running content_routing\n"
    "                            whose destinations alpha and beta are sinks; good\n"
    "                            clients are verified by the forwarded sink replies\n"
    "Exit status of demo: 0 when every good connection verified and every fault was\n"
    "handled, 3 when an injected allocation failure made connections fail cleanly,\n"
    "1 otherwise.\n";

enum {
    O_LISTEN = CR_OPT_END, O_NAME, O_PAUSE_MS, O_RCVBUF, O_CONNS, O_FRAMES, O_FRAME_BYTES,
    O_TUNNEL_BYTES, O_WRITE_SIZE, O_SEED, O_MID_FRAME, O_MID_TUNNEL, O_BAD_ROUTE, O_LONG_HEADER,
    O_LONG_FRAME, O_SINK_PAUSE_MS, O_SINK_RCVBUF, O_TIMEOUT_MS, O_DURATION_S, O_FAIL_ALLOC,
    O_COUNT_ALLOCS, O_PROXY
};

#define ARG required_argument

static const struct option sink_options[] = {
    {"listen", ARG, NULL, O_LISTEN},
    {"name", ARG, NULL, O_NAME},
    {"max-line", ARG, NULL, CR_OPT_MAX_LINE},
    {"max-frame", ARG, NULL, CR_OPT_MAX_FRAME},
    {"read-reserve", ARG, NULL, CR_OPT_READ_RESERVE},
    {"pause-ms", ARG, NULL, O_PAUSE_MS},
    {"rcvbuf", ARG, NULL, O_RCVBUF},
    CLI_STANDARD_OPTIONS,
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
    CR_PROXY_OPTIONS,
    CLI_STANDARD_OPTIONS,
    {NULL, 0, NULL, 0}};

static void print_usage(FILE *out) { fputs(usage, out); }

static int next_option(int argc, char **argv, const struct option *options)
{
    return cli_next_option(argc, argv, options, print_usage);
}

/* ---- sink mode: one sink until SIGINT/SIGTERM ---------------------------- */

typedef struct service {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    cr_sink *sink;
} service;

static void on_signal_closed(uv_handle_t *h) { (void)h; }

static void on_signal(uv_signal_t *sig, int signum)
{
    service *sv = sig->data;
    (void)signum;
    if (sv->sink)
        cr_sink_stop(sv->sink);
    uv_close((uv_handle_t *)&sv->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&sv->sigterm, on_signal_closed);
}

static int serve_sink(const struct sockaddr *listen, const cr_sink_config *sc)
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
    int rc = cr_sink_start(&sv.sink, &sv.loop, sc, listen, &port);
    if (rc == 0) {
        printf("listening %d\n", port);
        fflush(stdout);
    } else {
        fprintf(stderr, "content_routing_rig: cannot listen: %s\n", bh_strerror(rc));
        on_signal(&sv.sigint, 0);
    }
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    int close_rc = uv_loop_close(&sv.loop);
    cr_sink_free(sv.sink);
    if (close_rc != 0) {
        fprintf(stderr, "content_routing_rig: uv_loop_close: %s\n", uv_strerror(close_rc));
        return 1;
    }
    return rc == 0 ? 0 : 1;
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
        case CR_OPT_MAX_LINE:
            sc.max_line = (size_t)cli_size("--max-line", optarg, 0, CLI_GIB);
            break;
        case CR_OPT_MAX_FRAME:
            sc.max_frame = (size_t)cli_size("--max-frame", optarg, 0, CLI_GIB);
            break;
        case CR_OPT_READ_RESERVE:
            sc.read_reserve = (size_t)cli_size("--read-reserve", optarg, 0, CLI_GIB);
            break;
        case O_PAUSE_MS:
            sc.pause_ms = (unsigned)cli_size("--pause-ms", optarg, 0, 3600000);
            break;
        case O_RCVBUF:
            sc.rcvbuf = (int)cli_size("--rcvbuf", optarg, 0, CLI_GIB);
            break;
        }
    }
    if (!have_listen)
        cli_die("sink needs --listen ADDR");
    if (!sc.name || !*sc.name || strlen(sc.name) > CR_MAX_NAME)
        cli_die("sink needs --name NAME (1-%d characters)", CR_MAX_NAME);
    return serve_sink((const struct sockaddr *)&addr, &sc);
}

/* ---- demo mode ------------------------------------------------------------ */

static size_t count(const char *opt, uint64_t max) { return (size_t)cli_size(opt, optarg, 0, max); }

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
            dc.frames = count("--frames", 1u << 24);
            break;
        case O_FRAME_BYTES:
            dc.frame_bytes = count("--frame-bytes", CLI_GIB);
            break;
        case O_TUNNEL_BYTES:
            dc.tunnel_bytes = count("--tunnel-bytes", 64 * CLI_GIB);
            break;
        case O_WRITE_SIZE:
            dc.write_size = (size_t)cli_size("--write-size", optarg, 1, CLI_GIB);
            break;
        case O_SEED:
            dc.seed = cli_size("--seed", optarg, 0, UINT64_MAX);
            break;
        case O_MID_FRAME:
            dc.mid_frame = count("--disconnect-mid-frame", 100000);
            break;
        case O_MID_TUNNEL:
            dc.mid_tunnel = count("--disconnect-mid-tunnel", 100000);
            break;
        case O_BAD_ROUTE:
            dc.bad_route = count("--bad-route", 100000);
            break;
        case O_LONG_HEADER:
            dc.long_header = count("--long-header", 100000);
            break;
        case O_LONG_FRAME:
            dc.long_frame = count("--long-frame", 100000);
            break;
        case O_SINK_PAUSE_MS:
            dc.sink_pause_ms = (unsigned)count("--sink-pause-ms", 60000);
            break;
        case O_SINK_RCVBUF:
            dc.sink_rcvbuf = (int)count("--sink-rcvbuf", CLI_GIB);
            break;
        case O_TIMEOUT_MS:
            dc.timeout_ms = (unsigned)count("--timeout-ms", 3600000);
            break;
        case O_DURATION_S:
            dc.duration_s = (unsigned)count("--duration-s", 86400);
            break;
        case O_FAIL_ALLOC:
            dc.fail_alloc = count("--fail-alloc", SIZE_MAX);
            break;
        case O_COUNT_ALLOCS:
            dc.count_allocs = 1;
            break;
        case O_PROXY:
            cli_addr("--proxy", optarg, &dc.ext_proxy);
            dc.external = 1;
            break;
        default:
            cr_proxy_option(c, optarg, &dc.proxy);
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
    cli_init("content_routing_rig");
    /* A peer that resets must not kill the process through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argc >= 2 ? argv[1] : "";
    if (strcmp(mode, "sink") == 0)
        return main_sink(argc - 1, argv + 1);
    if (strcmp(mode, "demo") == 0)
        return main_demo(argc - 1, argv + 1);
    static const struct option top_options[] = {CLI_STANDARD_OPTIONS, {NULL, 0, NULL, 0}};
    if (argc >= 2 && argv[1][0] == '-') {
        next_option(argc, argv, top_options);
        cli_die("unexpected argument '%s'", argv[1]);
    }
    fputs(usage, stderr);
    return 2;
}
