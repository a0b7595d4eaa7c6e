/* main.c - sni_router: routes TLS connections by the server name (SNI) of their
 * ClientHello without terminating TLS, on libuv with bh_reader, bh_buf and
 * bh_tunnel.
 *
 *   sni_router --listen ADDR [--listen ADDR ...] --route NAME[+ALPN]=HOST:PORT ...
 *              [--default HOST:PORT] [--max-hello BYTES] [--hello-timeout MS]
 *              [--idle-timeout MS] [--read-reserve BYTES] [--stats] [--quiet]
 *
 * ADDR and HOST:PORT are IPV4:PORT or [IPV6]:PORT; listening on port 0 picks
 * a free port. For each listener the router prints "listening PORT" on
 * stdout once it accepts. NAME is a host name ("alpha.example") or a
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
 * --stats prints per-route counters (connections, open, failed, bytes each
 * way), the rejections by kind, how tunnels ended and their backpressure
 * (waits on a slow destination, count and ms, each way) on stdout on SIGUSR1
 * and at exit. SIGTERM
 * or SIGINT stops accepting and lets open connections finish, then the
 * router exits 0; a second one resets what is still open. */
#include "sni_router.h"

#include <getopt.h>
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
    "  --stats                print counters on SIGUSR1 and at exit\n"
    "  --quiet                no per-connection log lines\n"
    "  --help, --version\n";

static void usage(FILE *out) { fputs(usage_text, out); }

typedef struct signals {
    sni_router *router;
    uv_signal_t usr1, term, intr;
    int terms;
} signals;

static void on_usr1(uv_signal_t *s, int signum)
{
    (void)signum;
    signals *sg = s->data;
    if (sg->router->cfg->stats)
        sni_router_print_stats(sg->router, stdout);
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)signum;
    signals *sg = s->data;
    sni_router_drain(sg->router, sg->terms++ > 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
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
        O_DEFAULT
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
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0}};
    sni_config cfg = {.max_hello = 16384, .hello_timeout_ms = 10000, .read_reserve = 4096};
    sni_table table;
    char err[256];
    sni_table_init(&table);
    int opt, rc = 0;
    cli_init("sni_router");
    while ((opt = cli_next_option(argc, argv, longopts, usage)) != -1) {
        switch (opt) {
        case 'l':
            if (cfg.listen_count == SNI_MAX_LISTEN)
                cli_die("at most %d --listen", SNI_MAX_LISTEN);
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
    uv_loop_t loop;
    uv_loop_init(&loop);
    sni_router router;
    signals sg = {.router = &router};
    rc = sni_router_start(&router, &loop, &cfg, &table);
    if (rc == 0) {
        uv_signal_t *hs[] = {&sg.usr1, &sg.term, &sg.intr};
        int nums[] = {SIGUSR1, SIGTERM, SIGINT};
        uv_signal_cb cbs[] = {on_usr1, on_term, on_term};
        for (int i = 0; i < 3; i++) {
            uv_signal_init(&loop, hs[i]);
            hs[i]->data = &sg;
            uv_signal_start(hs[i], cbs[i], nums[i]);
            uv_unref((uv_handle_t *)hs[i]); /* the loop ends when connections do */
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        if (cfg.stats)
            sni_router_print_stats(&router, stdout);
    }
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sni_table_free(&table);
    bh_thread_cache_trim(); /* so leak checkers see nothing left */
    return rc == 0 ? 0 : 1;
}
