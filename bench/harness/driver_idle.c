/* driver_idle.c - the stream driver's idle mode: what idle connections cost
 * a proxy, and whether the memory comes back.
 *
 *   bh_stream_driver --idle --connect ADDR --conns N --proxy-pid PID
 *     [--settle-ms MS] [--timeout SEC] [--json FILE] [--meta KEY=VALUE]...
 *
 * 0. Warms the proxy up: --warmup connections (default 16) go through the
 *    same steps below, so that what every service pays once (its loop's and
 *    allocator's first allocations) is part of the baseline.
 * 1. Samples the proxy's VmRSS (before).
 * 2. Opens N connections (at most IDLE_BATCH connecting at a time) and sends
 *    one route frame on each (IDLE_LINE bytes: 63 B payload and '\n', as the
 *    stream driver's frames), then leaves them idle; samples VmRSS once it
 *    has settled (idle).
 * 3. Finishes every connection ("TUNNEL\n", half-close), checks each reply
 *    against what was sent (byte count and FNV-1a 64), closes it, and samples
 *    VmRSS once it has settled again (after).
 * "Settled": two samples SETTLE_STEP_MS apart differ by less than 1 % for
 * --settle-ms (default 1000), at most IDLE_SETTLE_MAX_MS. Writes one JSON
 * object (cJSON) to --json or stdout: the configuration, the three samples,
 * bytes per idle connection ((idle - before) / N) and after / before.
 * Exit status 0 when every connection verified. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "driver_idle.h"
#include "harness_common.h"
#include "proc_stats.h"

#define IDLE_BATCH 256
#define IDLE_LINE 64
#define SETTLE_STEP_MS 100
#define IDLE_SETTLE_MAX_MS 20000
#define MAX_META 16

enum { I_CONNECTING, I_PARKED, I_REPLY, I_DONE };

typedef struct iconn {
    int fd;
    int state;
    size_t reply_len;
    char reply[64];
} iconn;

typedef struct idle_opts {
    hx_addr addr;
    int have_addr;
    size_t conns;
    size_t warmup;
    long proxy_pid;
    unsigned settle_ms;
    double timeout_s;
    const char *json_path;
    const char *meta_key[MAX_META], *meta_val[MAX_META];
    int nmeta;
} idle_opts;

static void idle_usage(FILE *out)
{
    fprintf(out, "usage: bh_stream_driver --idle --connect ADDR --proxy-pid PID [--conns N]\n"
                 "  [--warmup N] [--settle-ms MS] [--timeout SEC] [--json FILE]\n"
                 "  [--meta KEY=VALUE]...\n"
                 "ADDR is IPV4:PORT, [IPV6]:PORT or unix:PATH.\n");
}

enum {
    O_IDLE = 256, O_CONNECT, O_CONNS, O_WARMUP, O_PROXY_PID, O_SETTLE_MS, O_TIMEOUT, O_JSON, O_META
};

static void parse_idle(int argc, char **argv, idle_opts *o)
{
    static const struct option longopts[] = {
        {"idle", no_argument, NULL, O_IDLE},
        {"connect", required_argument, NULL, O_CONNECT},
        {"conns", required_argument, NULL, O_CONNS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"proxy-pid", required_argument, NULL, O_PROXY_PID},
        {"settle-ms", required_argument, NULL, O_SETTLE_MS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", required_argument, NULL, O_JSON},
        {"meta", required_argument, NULL, O_META},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = cli_next_option(argc, argv, longopts, idle_usage)) != -1) {
        switch (c) {
        case O_IDLE:
            break;
        case O_CONNECT:
            hx_addr_option("--connect", optarg, &o->addr);
            o->have_addr = 1;
            break;
        case O_CONNS:
            o->conns = (size_t)cli_size("--conns", optarg, 1, 1000000);
            break;
        case O_WARMUP:
            o->warmup = (size_t)cli_size("--warmup", optarg, 0, 1000000);
            break;
        case O_PROXY_PID:
            o->proxy_pid = (long)cli_size("--proxy-pid", optarg, 1, INT32_MAX);
            break;
        case O_SETTLE_MS:
            o->settle_ms = (unsigned)cli_size("--settle-ms", optarg, 0, 60000);
            break;
        case O_TIMEOUT:
            o->timeout_s = cli_seconds("--timeout", optarg, 86400);
            break;
        case O_JSON:
            o->json_path = optarg;
            break;
        case O_META: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                cli_die("--meta: '%s' is not KEY=VALUE", optarg);
            if (o->nmeta == MAX_META)
                cli_die("--meta: at most %d", MAX_META);
            *eq = '\0';
            o->meta_key[o->nmeta] = optarg;
            o->meta_val[o->nmeta++] = eq + 1;
            break;
        }
        default:
            cli_die("unexpected option");
        }
    }
    if (!o->have_addr || o->proxy_pid <= 0)
        cli_die("--idle needs --connect and --proxy-pid");
}

static uint64_t rss_kib(pid_t pid)
{
    proc_stats ps;
    if (proc_stats_read(pid, &ps) != 0)
        cli_fail("cannot read /proc stats of pid %d", (int)pid);
    return ps.rss_kib;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* VmRSS once it has changed by less than 1 % for settle_ms. */
static uint64_t settled_rss(pid_t pid, unsigned settle_ms)
{
    uint64_t ref = rss_kib(pid), cur = ref;
    unsigned stable = 0;
    for (unsigned waited = 0; stable < settle_ms && waited < IDLE_SETTLE_MAX_MS;
         waited += SETTLE_STEP_MS) {
        sleep_ms(SETTLE_STEP_MS);
        cur = rss_kib(pid);
        uint64_t d = cur > ref ? cur - ref : ref - cur;
        if (d * 100 < ref) {
            stable += SETTLE_STEP_MS;
        } else {
            stable = 0;
            ref = cur;
        }
    }
    return cur;
}

/* The fd limit must cover the clients: raised to the hard limit if needed. */
static void raise_nofile(size_t conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        cli_fail("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        cli_fail("%zu connections need %llu descriptors, hard limit %llu", conns,
               (unsigned long long)need, (unsigned long long)rl.rlim_max);
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        cli_fail("setrlimit: %s", strerror(errno));
}

static int wait_events(int epfd, struct epoll_event *ev, int max, uint64_t deadline)
{
    if (hx_now_ns() > deadline)
        cli_fail("timed out");
    int n = epoll_wait(epfd, ev, max, 1000);
    if (n < 0 && errno != EINTR)
        cli_fail("epoll_wait: %s", strerror(errno));
    return n < 0 ? 0 : n;
}

/* Opens every connection and sends its line. Returns the failures. */
static size_t open_all(iconn *cs, size_t n, const hx_addr *addr, const uint8_t *line, int epfd,
                       uint64_t deadline)
{
    struct epoll_event ev[IDLE_BATCH];
    size_t started = 0, parked = 0, failed = 0, pending = 0;
    while (parked + failed < n) {
        while (started < n && pending < IDLE_BATCH) {
            iconn *c = &cs[started++];
            c->fd = hx_connect(addr, 1);
            if (c->fd < 0)
                cli_fail("connect: %s", strerror(errno));
            c->state = I_CONNECTING;
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) != 0)
                cli_fail("epoll_ctl: %s", strerror(errno));
            pending++;
        }
        int k = wait_events(epfd, ev, IDLE_BATCH, deadline);
        for (int i = 0; i < k; i++) {
            iconn *c = ev[i].data.ptr;
            pending--;
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            if (write(c->fd, line, IDLE_LINE) != IDLE_LINE) {
                failed++;
                close(c->fd);
                c->fd = -1;
                c->state = I_DONE;
                continue;
            }
            c->state = I_PARKED;
            parked++;
        }
    }
    return failed;
}

/* Finishes every parked connection and checks its reply. Returns failures. */
static size_t finish_all(iconn *cs, size_t n, const char *expect, int epfd, uint64_t deadline)
{
    static const char tunnel[] = "TUNNEL\n";
    struct epoll_event ev[IDLE_BATCH];
    size_t waiting = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        iconn *c = &cs[i];
        if (c->state != I_PARKED)
            continue;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (write(c->fd, tunnel, sizeof tunnel - 1) != (ssize_t)(sizeof tunnel - 1) ||
            shutdown(c->fd, SHUT_WR) != 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) != 0) {
            failed++;
            close(c->fd);
            c->state = I_DONE;
            continue;
        }
        c->state = I_REPLY;
        waiting++;
    }
    while (waiting > 0) {
        int k = wait_events(epfd, ev, IDLE_BATCH, deadline);
        for (int i = 0; i < k; i++) {
            iconn *c = ev[i].data.ptr;
            ssize_t r = read(c->fd, c->reply + c->reply_len, sizeof c->reply - 1 - c->reply_len);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r > 0) {
                c->reply_len += (size_t)r;
                if (c->reply_len < sizeof c->reply - 1)
                    continue;
            }
            c->reply[c->reply_len] = '\0';
            failed += strcmp(c->reply, expect) != 0;
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->state = I_DONE;
            waiting--;
        }
    }
    return failed;
}

static void write_json(const idle_opts *o, uint64_t before, uint64_t idle, uint64_t after,
                       size_t failed)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        cli_fail("out of memory");
    for (int i = 0; i < o->nmeta; i++)
        cJSON_AddStringToObject(j, o->meta_key[i], o->meta_val[i]);
    cJSON_AddStringToObject(j, "mode", "idle");
    cJSON_AddNumberToObject(j, "conns", (double)o->conns);
    cJSON_AddNumberToObject(j, "warmup_conns", (double)o->warmup);
    cJSON_AddNumberToObject(j, "line_bytes", IDLE_LINE);
    cJSON_AddNumberToObject(j, "rss_before_kib", (double)before);
    cJSON_AddNumberToObject(j, "rss_idle_kib", (double)idle);
    cJSON_AddNumberToObject(j, "rss_after_kib", (double)after);
    double per = ((double)idle - (double)before) * 1024.0 / (double)o->conns;
    cJSON_AddNumberToObject(j, "bytes_per_idle_conn", per);
    cJSON_AddNumberToObject(j, "after_over_before", before ? (double)after / (double)before : 0);
    cJSON_AddNumberToObject(j, "connections_failed", (double)failed);
    cJSON_AddBoolToObject(j, "checksum_ok", failed == 0);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        cli_fail("out of memory");
    FILE *f = o->json_path ? fopen(o->json_path, "w") : stdout;
    if (!f)
        cli_fail("cannot write %s: %s", o->json_path, strerror(errno));
    fprintf(f, "%s\n", text);
    if (f != stdout)
        fclose(f);
    cJSON_free(text);
}

int driver_idle_main(int argc, char **argv)
{
    idle_opts o = {.conns = 5000, .warmup = 16, .settle_ms = 1000, .timeout_s = 300};
    parse_idle(argc, argv, &o);
    raise_nofile(o.conns);
    uint8_t line[IDLE_LINE];
    memset(line, 'i', sizeof line);
    memcpy(line, "ROUTE idle ", 11);
    line[IDLE_LINE - 1] = '\n';
    char expect[64];
    uint64_t h = fnv1a64(fnv1a64(FNV1A64_OFFSET, line, sizeof line), "TUNNEL\n", 7);
    snprintf(expect, sizeof expect, "OK %d %016" PRIx64 "\n", IDLE_LINE + 7, h);

    iconn *cs = calloc(o.conns > o.warmup ? o.conns : o.warmup, sizeof *cs);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || epfd < 0)
        cli_fail("setup failed");
    pid_t pid = (pid_t)o.proxy_pid;
    uint64_t deadline = hx_now_ns() + (uint64_t)(o.timeout_s * 1e9);

    size_t failed = 0;
    if (o.warmup > 0) {
        failed += open_all(cs, o.warmup, &o.addr, line, epfd, deadline);
        failed += finish_all(cs, o.warmup, expect, epfd, deadline);
        memset(cs, 0, o.warmup * sizeof *cs);
    }
    uint64_t before = settled_rss(pid, o.settle_ms);
    failed += open_all(cs, o.conns, &o.addr, line, epfd, deadline);
    uint64_t idle = settled_rss(pid, o.settle_ms);
    failed += finish_all(cs, o.conns, expect, epfd, deadline);
    uint64_t after = settled_rss(pid, o.settle_ms);

    write_json(&o, before, idle, after, failed);
    if (failed)
        fprintf(stderr, "bh_stream_driver: %zu idle connection(s) failed\n", failed);
    close(epfd);
    free(cs);
    return failed == 0 ? 0 : 1;
}
