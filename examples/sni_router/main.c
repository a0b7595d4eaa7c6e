/* main.c - sni_router: routes TLS connections by the server name (SNI) of their
 * ClientHello without terminating TLS, on libuv with bh_reader, bh_buf and
 * bh_tunnel.
 *
 *   sni_router --listen ADDR [--listen ADDR ...] --route NAME[+ALPN]=HOST:PORT ...
 *              [--default HOST:PORT] [--max-hello BYTES] [--hello-timeout MS]
 *              [--idle-timeout MS] [--read-reserve BYTES] [--workers N] [--stats]
 *              [--quiet]
 *
 * ADDR and HOST:PORT are IPV4:PORT, [IPV6]:PORT or HOST:PORT with a host name,
 * which is resolved once at start-up (getaddrinfo: its first IPV4 address,
 * else its first IPV6 one); listening on port 0 picks a free port. For each
 * listener the router prints "listening PORT" on stdout once it accepts.
 *
 * --workers N (default 1) runs N routers, each on its own thread and libuv
 * loop with its own SO_REUSEPORT listeners on the same addresses (the kernel
 * spreads connections over them) and its own connections and counters;
 * they share only the configuration (tools/workers.h). NAME is a host name ("alpha.example") or a
 * wildcard ("*.example": any name ending in ".example"); an exact name wins
 * over wildcards, the longest wildcard over shorter ones, and --default
 * takes names nothing matches and hellos without SNI. "NAME+ALPN" (e.g.
 * "alpha.example+h2") routes only hellos of NAME that offer that ALPN
 * protocol and wins over the plain NAME.
 *
 * Per connection: the ClientHello is read into a bh_buf (at most --max-hello
 * bytes, default 16 KiB) and parsed as it arrives, in any TCP fragmentation
 * and over any number of TLS records, without consuming anything
 * (sni_router/hello.c). Once complete, the server_name picks the backend; the
 * router connects to it and starts a bh_tunnel that writes the buffered
 * bytes (the whole ClientHello, unchanged) to the backend first and then
 * relays both directions raw, with half-close, reset and backpressure passed
 * through, until both ends are done or nothing moved for --idle-timeout ms
 * (default: no limit). The router never decrypts anything. The tunnel reads
 * --read-reserve bytes per side (default 4 KiB: small per idle connection;
 * bulk transfers move to the tunnel's splice path after two full reads).
 *
 * Refused connections get a fatal TLS alert where one makes sense, then the
 * router shuts down its side and closes after the client's EOF. Each is
 * counted under one kind and logged once on stderr (unless --quiet):
 *   not_tls         first bytes are not a TLS handshake record (no alert)
 *   sslv2           an SSL 2.0 ClientHello (no alert: SSLv2 has none)
 *   malformed       inconsistent framing or lengths: decode_error
 *   too_large       the hello needs more than --max-hello: illegal_parameter
 *   bad_name        server_name not a valid host name: illegal_parameter
 *   no_sni          no server_name and no --default: missing_extension
 *   unknown_name    no route and no --default: unrecognized_name
 *   hello_timeout   hello not complete within --hello-timeout ms (default
 *                   10000; also bounds the backend connect): no alert
 *   client_gone     EOF or error before the hello was complete
 *   backend_failed  backend refused or did not answer: internal_error
 *
 * Log lines (stderr) have the tools/log.h format: "TIME warn conn=ID
 * peer=ADDR:PORT what ...", connection ids unique across workers.
 *
 * --stats prints per-route counters (connections, open, failed, bytes each
 * way), the rejections by kind, how tunnels ended and their backpressure
 * (waits on a slow destination, count and ms, each way) on stdout on SIGUSR1
 * and at exit. With several workers SIGUSR1 makes each print its own
 * report after a line "stats worker=K", and the report at exit is the sum
 * over all workers followed by one line "stats worker=K accepted=N" per
 * worker. SIGTERM
 * or SIGINT stops accepting and lets open connections finish, then the
 * router exits 0; a second one resets what is still open. */
#include "sni_router.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "Usage: sni_router --listen ADDR --route NAME[+ALPN]=HOST:PORT ... [options]\n"
    "  --listen ADDR          IPV4:PORT or [IPV6]:PORT (repeatable, port 0: any free)\n"
    "  --route NAME[+ALPN]=HOST:PORT  host name or *.suffix [offering ALPN] -> backend\n"
    "                         (repeatable)\n"
    "  --default HOST:PORT    backend for other names and hellos without SNI\n"
    "  --max-hello BYTES      largest ClientHello accepted (default 16384)\n"
    "  --hello-timeout MS     time to send the hello / to connect (default 10000)\n"
    "  --idle-timeout MS      end a tunnel after MS without traffic (default 0: never)\n"
    "  --read-reserve BYTES   tunnel read size per side (default 4096; bulk is spliced)\n"
    "  --workers N            routers on N threads, one loop each (default 1)\n"
    "  --stats                print counters on SIGUSR1 and at exit\n"
    "  --quiet                no per-connection log lines\n"
    "  --help, --version\n"
    "ADDR, HOST:PORT: IPV4:PORT, [IPV6]:PORT or a host name:PORT (resolved at start-up)\n";

static void usage(FILE *out) { fputs(usage_text, out); }

/* What the workers share: the configuration (read-only while they run) and,
 * under mu, the counters they add up as they finish. */
typedef struct shared {
    const sni_config *cfg;
    const sni_table *table;
    uv_mutex_t mu;
    sni_table totals;           /* the table's routes with the summed counters */
    sni_router sum;
    uint64_t accepted[WORKERS_MAX];
} shared;

/* One worker: a router with its own copy of the table. */
typedef struct router_worker {
    sni_router router;
    sni_table table;
    uv_signal_t usr1;
    int index;
} router_worker;

static void on_usr1(uv_signal_t *s, int signum)
{
    (void)signum;
    router_worker *rw = s->data;
    if (!rw->router.cfg->stats)
        return;
    if (rw->router.cfg->workers == 1) {
        sni_router_print_stats(&rw->router, stdout);
        return;
    }
    flockfile(stdout); /* one block per worker */
    printf("stats worker=%d\n", rw->index);
    sni_router_print_stats(&rw->router, stdout);
    funlockfile(stdout);
}

static int worker_start(worker *w, uv_loop_t *loop, void *ctx, void **state)
{
    shared *sh = ctx;
    router_worker *rw = bh_malloc(sizeof *rw);
    *state = rw;
    if (!rw)
        return UV_ENOMEM;
    memset(rw, 0, sizeof *rw);
    rw->index = workers_index(w);
    if (sni_table_clone(&rw->table, sh->table) != 0)
        return UV_ENOMEM;
    int rc = sni_router_start(&rw->router, loop, sh->cfg, &rw->table, w);
    if (rc == 0) { /* without --stats SIGUSR1 is ignored, as it always was */
        uv_signal_init(loop, &rw->usr1);
        rw->usr1.data = rw;
        uv_signal_start(&rw->usr1, on_usr1, SIGUSR1);
        uv_unref((uv_handle_t *)&rw->usr1); /* the loop ends when connections do */
    }
    return rc;
}

/* The first stop drains, a second one resets what is still open. */
static void worker_stop(void *state, int again)
{
    router_worker *rw = state;
    if (rw && rw->router.loop)
        sni_router_drain(&rw->router, again);
}

static void worker_finish(worker *w, void *state, void *ctx)
{
    shared *sh = ctx;
    router_worker *rw = state;
    if (!rw)
        return;
    uv_mutex_lock(&sh->mu);
    sni_router_add_counters(&sh->sum, &rw->router);
    sni_table_add_stats(&sh->totals, &rw->table);
    sh->accepted[workers_index(w)] = rw->router.accepted;
    uv_mutex_unlock(&sh->mu);
    sni_table_free(&rw->table);
    bh_free(rw);
    bh_thread_cache_trim(); /* this thread's caches, so leak checkers see nothing left */
}

/* Runs cfg->workers routers until SIGINT/SIGTERM; prints the summed
 * counters with --stats. Returns the exit status. */
static int run(const sni_config *cfg, sni_table *table)
{
    static const workers_ops ops = {worker_start, worker_stop, worker_finish};
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.cfg = cfg;
    sh.table = table;
    uv_mutex_init(&sh.mu);
    if (sni_table_clone(&sh.totals, table) != 0)
        cli_fail("out of memory");
    sh.sum.cfg = cfg;
    sh.sum.table = &sh.totals;
    workers_config wc = {.count = cfg->workers, .ops = &ops, .ctx = &sh, .prog = cli_prog(),
                         .handle_signals = 1};
    int rc = workers_run(&wc);
    if (rc == 0 && cfg->stats) {
        sni_router_print_stats(&sh.sum, stdout);
        for (int i = 0; cfg->workers > 1 && i < cfg->workers; i++)
            printf("stats worker=%d accepted=%" PRIu64 "\n", i, sh.accepted[i]);
        fflush(stdout);
    }
    sni_table_free(&sh.totals);
    uv_mutex_destroy(&sh.mu);
    return rc;
}

int main(int argc, char **argv)
{
    enum {
        O_MAX_HELLO = 256,
        O_HELLO_TIMEOUT,
        O_IDLE_TIMEOUT,
        O_READ_RESERVE,
        O_STATS,
        O_QUIET,
        O_DEFAULT,
        O_WORKERS
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"route", required_argument, NULL, 'r'},
        {"default", required_argument, NULL, O_DEFAULT},
        {"max-hello", required_argument, NULL, O_MAX_HELLO},
        {"hello-timeout", required_argument, NULL, O_HELLO_TIMEOUT},
        {"idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT},
        {"read-reserve", required_argument, NULL, O_READ_RESERVE},
        {"stats", no_argument, NULL, O_STATS},
        {"quiet", no_argument, NULL, O_QUIET},
        {"workers", required_argument, NULL, O_WORKERS},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0}};
    sni_config cfg = {.max_hello = 16384, .hello_timeout_ms = 10000, .read_reserve = 4096,
                      .workers = 1};
    sni_table table;
    char err[256];
    sni_table_init(&table);
    int opt, rc = 0;
    cli_init(argv[0]);
    while ((opt = cli_next_option(argc, argv, longopts, usage)) != -1) {
        switch (opt) {
        case 'l':
            if (cfg.listen_count == SNI_MAX_LISTEN)
                cli_die("at most %d --listen", SNI_MAX_LISTEN);
            cli_addr("--listen", optarg, &cfg.listen_addr[cfg.listen_count]);
            cfg.listen[cfg.listen_count++] = optarg;
            break;
        case 'r':
            rc = sni_table_add(&table, optarg, err, sizeof err);
            break;
        case O_DEFAULT:
            rc = sni_table_set_default(&table, optarg, err, sizeof err);
            break;
        case O_MAX_HELLO:
            cfg.max_hello = (size_t)cli_size("--max-hello", optarg, 64, CLI_MIB);
            break;
        case O_HELLO_TIMEOUT:
            cfg.hello_timeout_ms = cli_size("--hello-timeout", optarg, 1, 86400000);
            break;
        case O_IDLE_TIMEOUT:
            cfg.idle_timeout_ms = cli_size("--idle-timeout", optarg, 0, 86400000);
            break;
        case O_READ_RESERVE:
            cfg.read_reserve = (size_t)cli_size("--read-reserve", optarg, 512, CLI_MIB);
            break;
        case O_STATS:
            cfg.stats = 1;
            break;
        case O_QUIET:
            cfg.quiet = 1;
            break;
        case O_WORKERS:
            cfg.workers = (int)cli_size("--workers", optarg, 1, WORKERS_MAX);
            break;
        }
        if (rc == -2)
            cli_fail("out of memory");
        if (rc != 0)
            cli_die("%s", err);
    }
    if (cfg.listen_count == 0)
        cli_die("--listen is required");
    if (table.count == 0 && !table.fallback)
        cli_die("give at least one --route or a --default");

    /* A peer that resets must not kill the process through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    rc = run(&cfg, &table);
    sni_table_free(&table);
    bh_thread_cache_trim(); /* so leak checkers see nothing left */
    return rc;
}
