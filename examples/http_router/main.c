/* main.c - http_router: a reverse proxy for HTTP/1.1 that routes each
 * request by its Host and path, on libuv with bh_reader, bh_buf, bh_writeq
 * and bh_tunnel.
 *
 *   http_router --listen ADDR:PORT --route HOST[/PREFIX]=ADDR:PORT ...
 *               [--default ADDR:PORT] [--workers N] [--max-head BYTES]
 *               [--head-timeout SECONDS] [--upstream-timeout SECONDS]
 *               [--idle-timeout SECONDS] [--pool-size N]
 *               [--write-budget BYTES] [--quiet]
 *
 * Prints "listening PORT" once it accepts (port 0 picks a free port) and
 * runs until SIGINT or SIGTERM, then exits 0. HOST is exact (any case) or
 * "*.suffix"; the Host header's port is ignored; among the routes of the
 * best matching host the longest PREFIX of the request path wins; no match
 * and no --default: 404 (the connection is kept).
 *
 * Per client connection one request at a time: its head (at most
 * --max-head bytes, request line at most 8 KiB or --max-head) is parsed
 * strictly (http_parse.c: smuggling attempts get 400 and close), then
 * forwarded unchanged to an upstream connection of its route (an idle
 * pooled one, else a new one) with "X-Forwarded-For: <client>" and "Via:
 * 1.1 http_router" added and a lone "Connection: close" line left out (the
 * upstream stays pooled; the client is closed after the response, which
 * then says "Connection: close"), body streamed (Content-Length or chunked, bounded
 * by --write-budget per queue); the response comes back the same way.
 * Pipelined requests wait in the client's buffer. Upgrade (101) and CONNECT
 * (2xx) switch both connections to a raw tunnel. Clean upstream connections
 * go back to a per-route pool (--pool-size, closed after --idle-timeout).
 * Router-made answers: 400, 404, 408 (--head-timeout), 414, 431, 502
 * (connect failed, bad response), 504 (--upstream-timeout), 505. Idle
 * keep-alive clients are closed after --idle-timeout. --workers N runs N
 * loops on N threads with SO_REUSEPORT listeners (tools/workers.h). */
#include "http_router.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "workers.h"

static const char usage_text[] =
    "Usage: http_router --listen ADDR:PORT --route HOST[/PREFIX]=ADDR:PORT ... [options]\n"
    "  --listen ADDR:PORT          IPV4:PORT or [IPV6]:PORT (port 0: any free)\n"
    "  --route HOST[/PREFIX]=ADDR:PORT  host name or *.suffix [and path prefix] ->\n"
    "                              upstream (repeatable)\n"
    "  --default ADDR:PORT         upstream for requests no route matches\n"
    "  --workers N                 loops on N threads (default 1)\n"
    "  --max-head BYTES            largest request head (default 16384)\n"
    "  --head-timeout SECONDS      time to send a head (default 10; then 408)\n"
    "  --upstream-timeout SECONDS  connect / response wait (default 30; then 504)\n"
    "  --idle-timeout SECONDS      idle keep-alive clients and pooled upstreams\n"
    "                              (default 60)\n"
    "  --pool-size N               idle upstream connections per route (default 16)\n"
    "  --write-budget BYTES        bytes queued per connection (default 256K)\n"
    "  --quiet                     no log lines\n"
    "  --help, --version\n";

static void usage(FILE *out) { fputs(usage_text, out); }

static int start(worker *w, uv_loop_t *loop, void *ctx, void **state)
{
    hr_server *s = bh_malloc(sizeof *s);
    *state = s;
    if (!s)
        return UV_ENOMEM;
    memset(s, 0, sizeof *s);
    return hr_server_start(s, w, loop, ctx);
}

static void stop(void *state, int again)
{
    (void)again;
    if (state)
        hr_server_stop(state);
}

static void finish(worker *w, void *state, void *ctx)
{
    (void)w;
    (void)ctx;
    if (state)
        hr_server_free(state);
    bh_free(state);
    bh_thread_cache_trim(); /* so leak checkers see nothing left */
}

static uint64_t ms(const char *opt, const char *text)
{
    return (uint64_t)(cli_seconds(opt, text, 86400.0) * 1000.0 + 0.5);
}

int main(int argc, char **argv)
{
    enum { O_DEFAULT = 256, O_WORKERS, O_MAX_HEAD, O_HEAD_TO, O_UP_TO, O_IDLE_TO, O_POOL,
           O_BUDGET, O_QUIET };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"route", required_argument, NULL, 'r'},
        {"default", required_argument, NULL, O_DEFAULT},
        {"workers", required_argument, NULL, O_WORKERS},
        {"max-head", required_argument, NULL, O_MAX_HEAD},
        {"head-timeout", required_argument, NULL, O_HEAD_TO},
        {"upstream-timeout", required_argument, NULL, O_UP_TO},
        {"idle-timeout", required_argument, NULL, O_IDLE_TO},
        {"pool-size", required_argument, NULL, O_POOL},
        {"write-budget", required_argument, NULL, O_BUDGET},
        {"quiet", no_argument, NULL, O_QUIET},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0}};
    hr_table table;
    hr_config cfg = {.workers = 1, .max_head = 16384, .head_timeout_ms = 10000,
                     .upstream_timeout_ms = 30000, .idle_timeout_ms = 60000, .pool_size = 16,
                     .write_budget = 256 * 1024, .table = &table};
    char err[256];
    int opt, rc = 0;
    hr_table_init(&table);
    cli_init("http_router");
    while ((opt = cli_next_option(argc, argv, longopts, usage)) != -1) {
        switch (opt) {
        case 'l': cfg.listen = optarg; break;
        case 'r': rc = hr_table_add(&table, optarg, err, sizeof err); break;
        case O_DEFAULT: rc = hr_table_set_default(&table, optarg, err, sizeof err); break;
        case O_WORKERS:
            cfg.workers = (unsigned)cli_size("--workers", optarg, 1, WORKERS_MAX);
            break;
        case O_MAX_HEAD:
            cfg.max_head = (size_t)cli_size("--max-head", optarg, 256, 16 * CLI_MIB);
            break;
        case O_HEAD_TO: cfg.head_timeout_ms = ms("--head-timeout", optarg); break;
        case O_UP_TO: cfg.upstream_timeout_ms = ms("--upstream-timeout", optarg); break;
        case O_IDLE_TO: cfg.idle_timeout_ms = ms("--idle-timeout", optarg); break;
        case O_POOL: cfg.pool_size = (size_t)cli_size("--pool-size", optarg, 0, 100000); break;
        case O_BUDGET:
            cfg.write_budget = (size_t)cli_size("--write-budget", optarg, 4096, CLI_GIB);
            break;
        case O_QUIET: cfg.quiet = 1; break;
        }
        if (rc == -2)
            cli_fail("out of memory");
        if (rc != 0)
            cli_die("%s", err);
    }
    if (!cfg.listen)
        cli_die("--listen is required");
    if (cli_parse_addr(cfg.listen, &(struct sockaddr_storage){0}) != 0)
        cli_die("--listen: bad address '%s' (IPV4:PORT or [IPV6]:PORT)", cfg.listen);
    if (table.count == 0 && !table.fallback)
        cli_die("give at least one --route or a --default");
    if (cfg.head_timeout_ms == 0 || cfg.upstream_timeout_ms == 0 || cfg.idle_timeout_ms == 0)
        cli_die("timeouts must be above 0");
    /* The head and its added lines always fit one queue. */
    if (cfg.write_budget < cfg.max_head + 1024)
        cfg.write_budget = cfg.max_head + 1024;

    signal(SIGPIPE, SIG_IGN); /* a peer that resets must not kill the process */
    static const workers_ops ops = {.start = start, .stop = stop, .finish = finish};
    workers_config wc = {.count = (int)cfg.workers, .ops = &ops, .ctx = &cfg,
                         .prog = "http_router", .handle_signals = 1};
    rc = workers_run(&wc);
    hr_table_free(&table);
    return rc;
}
