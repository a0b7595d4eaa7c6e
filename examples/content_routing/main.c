/* main.c - content_routing: a content-routing TCP proxy on libuv built from
 * bh_reader, bh_buf, bh_writeq and bh_tunnel.
 *
 *   content_routing --listen 127.0.0.1:PORT --dest NAME=ADDR [--dest ...]
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
 * both directions have ended.
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
 * turns POLLHUP after a partial read into EOF); bh_reader checks the
 * socket's error at EOF and reports UV_ECONNRESET, so a client that resets
 * right after its tunnel data is passed on as a reset and the destination
 * sees the stream aborted, never complete.
 *
 * BACKPRESSURE: when a destination's queue refuses a slice (BH_EFULL: more
 * than --write-budget bytes queued), the proxy keeps that slice, stops
 * reading the client (bh_reader_stop) and resumes from the queue's drain
 * callback (below half the budget). Memory per connection stays bounded by
 * one read buffer (max(max_line + 1 + max_frame, read_reserve)), one held
 * slice and the write budget, per direction.
 *
 * HARNESS COMPATIBILITY (bench/harness, see docs/design.md): the proxy accepts
 * --upstream ADDR (every connection routed at accept to that one
 * destination, no ROUTE line) and --line-frames (every other line is a frame).
 *
 * WORKERS: --workers N runs N proxies, each on its own thread and libuv loop
 * with its own SO_REUSEPORT listener on the --listen address (the kernel
 * spreads connections over them); they share only the configuration
 * (tools/workers.h). Log lines have the tools/log.h format, session ids
 * unique across workers; --verbose's report at exit sums all workers.
 *
 * The parts: main.c (this command line, signals), options.c (the proxy's
 * options), parser.c (the protocol), proxy.c (configuration, listener,
 * accepting), session.c (ending a session, upstream -> client) and
 * upstream.c (client -> upstream, the switch to the tunnel).
 * tests/e2e/content_routing drives it with sinks, faulty clients and
 * allocation failures. */
#include "content_routing.h"
#include "log.h"
#include "workers.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: content_routing --listen ADDR (--dest NAME=ADDR ... | --upstream ADDR) [options]\n"
    "Routes each client's frames to the destination its ROUTE line names, then\n"
    "tunnels raw bytes after TUNNEL (the protocol is described at the top of\n"
    "examples/content_routing/main.c). Prints \"listening PORT\"; SIGINT or SIGTERM\n"
    "closes every socket and exits 0.\n"
    "  --listen ADDR             address to accept clients on; port 0 picks one\n"
    "  --dest NAME=ADDR          a destination (repeatable, at most 16)\n"
    "  --upstream ADDR           harness mode: route every connection to this destination\n"
    "  --line-frames             harness mode: every other line is a frame by itself\n"
    "  --read-reserve BYTES      spare space per read (default 16K)\n"
    "  --write-budget BYTES      bytes queued per direction before reading pauses\n"
    "                            (default 256K)\n"
    "  --max-line BYTES          longest header line (default 1024)\n"
    "  --max-frame BYTES         largest payload frame (default 64K)\n"
    "  --upstream-sndbuf BYTES   SO_SNDBUF of upstream sockets (default: kernel's)\n"
    "  --header-timeout-ms MS    close a client whose first line (ROUTE) is not complete\n"
    "                            MS ms after accept; 0 = never (default 10000)\n"
    "  --idle-timeout-ms MS      close a session when the client sends nothing, a side\n"
    "                            reads nothing queued for it, or the destination owes\n"
    "                            its reply and sends nothing, for MS ms; 0 = never\n"
    "                            (default 300000)\n"
    "  --workers N               N proxies on N threads, one loop and one SO_REUSEPORT\n"
    "                            listener each (default 1)\n"
    "  --verbose                 log how each session ends on stderr\n"
    "  --help, --version\n"
    "Sizes accept a K, M or G suffix (KiB, MiB, GiB); ADDR is IPV4:PORT, [IPV6]:PORT\n"
    "or HOST:PORT (a host name, resolved once at start-up).\n";

static void print_usage(FILE *out) { fputs(usage, out); }

/* What the workers share: the configuration (read-only while they run) and,
 * under mu, the counters they add up as they finish. */
typedef struct shared {
    const struct sockaddr *listen;
    const cr_proxy_config *cfg;
    uv_mutex_t mu;
    struct cr_proxy_stats sum;
} shared;

/* One proxy per worker, on the worker's loop (state: the cr_proxy). */
static int worker_start(worker *w, uv_loop_t *loop, void *ctx, void **state)
{
    shared *sh = ctx;
    cr_proxy_config pc = *sh->cfg;
    pc.worker = w;
    cr_proxy *px = NULL;
    int rc = cr_proxy_start(&px, loop, &pc, sh->listen, NULL);
    *state = px;
    return rc;
}

static void worker_stop(void *state, int again)
{
    if (state && !again)
        cr_proxy_stop(state);
}

static void worker_finish(worker *w, void *state, void *ctx)
{
    (void)w;
    shared *sh = ctx;
    if (!state)
        return;
    struct cr_proxy_stats st;
    cr_proxy_get_stats(state, &st);
    cr_proxy_free(state);
    uv_mutex_lock(&sh->mu);
    sh->sum.accepted += st.accepted;
    sh->sum.completed += st.completed;
    sh->sum.rejected += st.rejected;
    sh->sum.aborted += st.aborted;
    sh->sum.frames += st.frames;
    sh->sum.pauses += st.pauses;
    uv_mutex_unlock(&sh->mu);
}

/* Runs nworkers proxies until SIGINT/SIGTERM; with --verbose reports the
 * sessions of all of them at exit. */
static int serve(const struct sockaddr *listen, const cr_proxy_config *pc, int nworkers)
{
    static const workers_ops ops = {worker_start, worker_stop, worker_finish};
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.listen = listen;
    sh.cfg = pc;
    uv_mutex_init(&sh.mu);
    workers_config wc = {.count = nworkers, .ops = &ops, .ctx = &sh, .prog = cli_prog(),
                         .handle_signals = 1};
    int rc = workers_run(&wc);
    if (pc->verbose)
        log_msg(LOG_LEVEL_INFO, 0, NULL,
                "%" PRIu64 " sessions: %" PRIu64 " completed, %" PRIu64 " rejected, %" PRIu64
                " aborted; %" PRIu64 " frames, %" PRIu64 " pauses",
                sh.sum.accepted, sh.sum.completed, sh.sum.rejected, sh.sum.aborted,
                sh.sum.frames, sh.sum.pauses);
    uv_mutex_destroy(&sh.mu);
    return rc;
}

enum { OPT_LISTEN = CR_OPT_END, OPT_WORKERS };

int main(int argc, char **argv)
{
    static const struct option options[] = {{"listen", required_argument, NULL, OPT_LISTEN},
                                            {"workers", required_argument, NULL, OPT_WORKERS},
                                            CR_PROXY_OPTIONS, CLI_STANDARD_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    cli_init(argv[0]);
    /* A peer that resets must not kill the process through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    cr_proxy_config pc;
    cr_proxy_config_default(&pc);
    struct sockaddr_storage addr;
    int have_listen = 0, nworkers = 1, c;
    while ((c = cli_next_option(argc, argv, options, print_usage)) != -1) {
        if (c == OPT_LISTEN) {
            cli_addr("--listen", optarg, &addr);
            have_listen = 1;
        } else if (c == OPT_WORKERS) {
            nworkers = (int)cli_size("--workers", optarg, 1, WORKERS_MAX);
        } else {
            cr_proxy_option(c, optarg, &pc);
        }
    }
    if (!have_listen)
        cli_die("--listen ADDR is required");
    char why[200];
    if (cr_proxy_config_check(&pc, why, sizeof why) != 0)
        cli_die("%s", why);
    return serve((const struct sockaddr *)&addr, &pc, nworkers);
}
