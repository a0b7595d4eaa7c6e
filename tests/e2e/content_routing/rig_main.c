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
#include "serve.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage:\n"
    "  content_routing_rig sink --listen ADDR --name NAME [sink options]\n"
    "  content_routing_rig demo [demo options]\n"
    "  content_routing_rig --help | --version\n"
    "Counts and sizes accept a K, M or G suffix (KiB, MiB, GiB); ADDR is IPV4:PORT,\n"
    "[IPV6]:PORT or HOST:PORT (a host name, resolved at start-up).\n"
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
    "  --progress-after-ms MS    when stderr is a terminal: a status line (connections\n"
    "                            done, MiB sent, MiB/s) from MS ms on, updated every\n"
    "                            250 ms (default 1000)\n"
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
    O_COUNT_ALLOCS, O_PROXY, O_PROGRESS_AFTER_MS
};

/* A numeric option of a mode: its name, getopt code and bounds, and the
 * field of the mode's config it sets (offset and type: 'z' size_t,
 * 'u' unsigned, 'i' int, 'q' uint64_t). */
typedef struct num_option {
    const char *name; /* with the dashes, as messages name it */
    int code;
    uint64_t min, max;
    size_t offset;
    char type;
} num_option;

#define SINK_NUM(name, code, max, field, type) \
    {name, code, 0, max, offsetof(cr_sink_config, field), type}
#define DEMO_NUM(name, code, min, max, field, type) \
    {name, code, min, max, offsetof(cr_demo_config, field), type}

static const num_option sink_numbers[] = {
    SINK_NUM("--max-line", CR_OPT_MAX_LINE, CLI_GIB, max_line, 'z'),
    SINK_NUM("--max-frame", CR_OPT_MAX_FRAME, CLI_GIB, max_frame, 'z'),
    SINK_NUM("--read-reserve", CR_OPT_READ_RESERVE, CLI_GIB, read_reserve, 'z'),
    SINK_NUM("--pause-ms", O_PAUSE_MS, 3600000, pause_ms, 'u'),
    SINK_NUM("--rcvbuf", O_RCVBUF, CLI_GIB, rcvbuf, 'i'),
};

static const num_option demo_numbers[] = {
    DEMO_NUM("--conns", O_CONNS, 1, 100000, conns, 'z'),
    DEMO_NUM("--frames", O_FRAMES, 0, 1u << 24, frames, 'z'),
    DEMO_NUM("--frame-bytes", O_FRAME_BYTES, 0, CLI_GIB, frame_bytes, 'z'),
    DEMO_NUM("--tunnel-bytes", O_TUNNEL_BYTES, 0, 64 * CLI_GIB, tunnel_bytes, 'z'),
    DEMO_NUM("--write-size", O_WRITE_SIZE, 1, CLI_GIB, write_size, 'z'),
    DEMO_NUM("--seed", O_SEED, 0, UINT64_MAX, seed, 'q'),
    DEMO_NUM("--disconnect-mid-frame", O_MID_FRAME, 0, 100000, mid_frame, 'z'),
    DEMO_NUM("--disconnect-mid-tunnel", O_MID_TUNNEL, 0, 100000, mid_tunnel, 'z'),
    DEMO_NUM("--bad-route", O_BAD_ROUTE, 0, 100000, bad_route, 'z'),
    DEMO_NUM("--long-header", O_LONG_HEADER, 0, 100000, long_header, 'z'),
    DEMO_NUM("--long-frame", O_LONG_FRAME, 0, 100000, long_frame, 'z'),
    DEMO_NUM("--sink-pause-ms", O_SINK_PAUSE_MS, 0, 60000, sink_pause_ms, 'u'),
    DEMO_NUM("--sink-rcvbuf", O_SINK_RCVBUF, 0, CLI_GIB, sink_rcvbuf, 'i'),
    DEMO_NUM("--timeout-ms", O_TIMEOUT_MS, 0, 3600000, timeout_ms, 'u'),
    DEMO_NUM("--duration-s", O_DURATION_S, 0, 86400, duration_s, 'u'),
    DEMO_NUM("--fail-alloc", O_FAIL_ALLOC, 0, SIZE_MAX, fail_alloc, 'z'),
    DEMO_NUM("--progress-after-ms", O_PROGRESS_AFTER_MS, 0, 3600000, progress_after_ms, 'u'),
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The options of a mode besides its numeric ones (ends with the NULL
 * entry). */
static const struct option sink_others[] = {{"listen", required_argument, NULL, O_LISTEN},
                                            {"name", required_argument, NULL, O_NAME},
                                            CLI_STANDARD_OPTIONS, {NULL, 0, NULL, 0}};
static const struct option demo_others[] = {{"count-allocs", no_argument, NULL, O_COUNT_ALLOCS},
                                            {"proxy", required_argument, NULL, O_PROXY},
                                            CR_PROXY_OPTIONS, CLI_STANDARD_OPTIONS,
                                            {NULL, 0, NULL, 0}};

/* The getopt table of a mode: its numeric options, then the others. */
static struct option *options_of(const num_option *nums, size_t n, const struct option *others)
{
    static struct option table[64];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        table[k++] = (struct option){nums[i].name + 2, required_argument, NULL, nums[i].code};
    do
        table[k++] = *others;
    while ((others++)->name && k < COUNT_OF(table));
    if (table[k - 1].name)
        cli_die("too many options");
    return table;
}

/* Sets the field of config that option code stands for from optarg and
 * returns 1, or returns 0 when code is none of nums. */
static int set_number(const num_option *nums, size_t n, int code, void *config)
{
    for (size_t i = 0; i < n; i++) {
        if (nums[i].code != code)
            continue;
        uint64_t v = cli_size(nums[i].name, optarg, nums[i].min, nums[i].max);
        char *field = (char *)config + nums[i].offset;
        if (nums[i].type == 'z')
            *(size_t *)(void *)field = (size_t)v;
        else if (nums[i].type == 'u')
            *(unsigned *)(void *)field = (unsigned)v;
        else if (nums[i].type == 'i')
            *(int *)(void *)field = (int)v;
        else
            *(uint64_t *)(void *)field = v;
        return 1;
    }
    return 0;
}

static void print_usage(FILE *out) { fputs(usage, out); }

static int next_option(int argc, char **argv, const struct option *options)
{
    return cli_next_option(argc, argv, options, print_usage);
}

/* ---- sink mode: one sink until SIGINT/SIGTERM ---------------------------- */

/* The sink as serve.h runs it. */
typedef struct service {
    const struct sockaddr *listen;
    const cr_sink_config *cfg;
    cr_sink *sink;
} service;

static int service_start(void *svc, uv_loop_t *loop, int *port)
{
    service *sv = svc;
    return cr_sink_start(&sv->sink, loop, sv->cfg, sv->listen, port);
}

static void service_stop(void *svc)
{
    service *sv = svc;
    if (sv->sink)
        cr_sink_stop(sv->sink);
}

static int serve_sink(const struct sockaddr *listen, const cr_sink_config *sc)
{
    static const serve_ops ops = {service_start, service_stop};
    service sv = {listen, sc, NULL};
    int rc = serve_until_signal(cli_prog(), &sv, &ops, NULL);
    cr_sink_free(sv.sink);
    return rc;
}

static int main_sink(int argc, char **argv)
{
    cr_sink_config sc = {NULL, 1024, (size_t)64 * 1024, 0, 0, 0};
    struct sockaddr_storage addr;
    int have_listen = 0, c;
    const struct option *options = options_of(sink_numbers, COUNT_OF(sink_numbers), sink_others);
    while ((c = next_option(argc, argv, options)) != -1) {
        if (c == O_LISTEN) {
            cli_addr("--listen", optarg, &addr);
            have_listen = 1;
        } else if (c == O_NAME) {
            sc.name = optarg;
        } else {
            set_number(sink_numbers, COUNT_OF(sink_numbers), c, &sc);
        }
    }
    if (!have_listen)
        cli_die("sink needs --listen ADDR");
    if (!sc.name || !*sc.name || strlen(sc.name) > CR_MAX_NAME)
        cli_die("sink needs --name NAME (1-%d characters)", CR_MAX_NAME);
    return serve_sink((const struct sockaddr *)&addr, &sc);
}

/* ---- demo mode ------------------------------------------------------------ */

static int main_demo(int argc, char **argv)
{
    cr_demo_config dc;
    cr_demo_config_default(&dc);
    const struct option *options = options_of(demo_numbers, COUNT_OF(demo_numbers), demo_others);
    int c;
    while ((c = next_option(argc, argv, options)) != -1) {
        if (c == O_COUNT_ALLOCS) {
            dc.count_allocs = 1;
        } else if (c == O_PROXY) {
            cli_addr("--proxy", optarg, &dc.ext_proxy);
            dc.external = 1;
        } else if (!set_number(demo_numbers, COUNT_OF(demo_numbers), c, &dc)) {
            cr_proxy_option(c, optarg, &dc.proxy);
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
    cli_init(argv[0]);
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
