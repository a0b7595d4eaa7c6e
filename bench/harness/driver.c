/* driver.c - the stream harness's clients.
 *
 * Keeps --conns connections to the proxy in flight. Each connection sends
 * --frames route frames (--frame-bytes of payload and "\n"), the line
 * "TUNNEL\n", then --tunnel-bytes of raw bytes (any values), in writes of
 * exactly --write-size bytes (64 for the fragmented scenario, 16 KiB for the
 * coalesced one; one write(2) each, TCP_NODELAY), half-closes, and waits for
 * the sink's reply "OK <nbytes> <fnv1a64>" forwarded by the proxy. A reply
 * that does not match what was sent fails the run. Latency is connect to
 * reply. With --duration 0 every connection runs once; otherwise finished
 * connections are replaced until the duration has passed.
 *
 * With --proxy-pid the proxy process is sampled from /proc right before the
 * first connect and right after the last reply, so its CPU time (all
 * threads), context switches and peak RSS cover exactly the measured window.
 * The run is written as a flat JSON object (one key per line) to --json or
 * stdout. Exit status: 0 when every connection verified, 1 otherwise.
 *
 * One thread, level-triggered epoll: each readiness pass writes one chunk per
 * writable connection, so connections advance round-robin.
 *
 * With --idle the driver measures idle connections instead (driver_idle.c). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "driver_idle.h"
#include "harness_common.h"
#include "proc_stats.h"

#define PROG "bh_stream_driver"
#define VARIANTS 16           /* distinct tunnel payloads, by connection number */
#define VARIANT_STRIDE 97     /* byte offset between variants in the pool */
#define NO_NEWLINE_SPAN ((size_t)72 * 1024) /* tunnel prefix longer than a max line */
#define MAX_META 16

enum { C_IDLE, C_CONNECTING, C_SENDING, C_REPLY };

typedef struct dconn {
    int fd;
    int state;
    int variant;
    uint64_t t_start;
    size_t sent;
    size_t reply_len;
    char reply[96];
} dconn;

typedef struct options {
    const char *connect;
    size_t conns, frames, frame_bytes, tunnel_bytes, write_size;
    double duration_s, timeout_s;
    long proxy_pid;
    const char *json_path;
    const char *meta_key[MAX_META];
    const char *meta_val[MAX_META];
    int nmeta;
} options;

static options opt = {
    .conns = 32, .frames = 64, .frame_bytes = 63, .tunnel_bytes = 1024 * 1024,
    .write_size = 64, .duration_s = 0, .timeout_s = 120, .proxy_pid = 0,
};

static hx_addr g_addr;
static uint8_t *g_header; /* route frames + "TUNNEL\n" */
static size_t g_header_len;
static uint8_t *g_pool;   /* tunnel bytes; variant v starts at v * VARIANT_STRIDE */
static uint64_t g_expect_hash[VARIANTS];
static size_t g_total;    /* bytes per connection */
static int g_epfd;

static uint64_t *g_lat;   /* per connection latency, ns */
static size_t g_nlat, g_lat_cap;
static uint64_t g_started, g_done, g_failed, g_bytes;
static char g_error[256];

static void usage(void)
{
    hx_die(PROG,
           "usage: " PROG " --connect ADDR [--conns N] [--frames N] [--frame-bytes N]\n"
           "  [--tunnel-bytes SIZE] [--write-size SIZE | --scenario fragmented|coalesced]\n"
           "  [--duration SEC] [--timeout SEC] [--proxy-pid PID] [--json FILE] [--meta KEY=VALUE]...");
}

static size_t need_size(const char *flag, const char *v)
{
    size_t n;
    if (hx_parse_size(v, &n) != 0)
        hx_die(PROG, "bad value for %s: %s", flag, v);
    return n;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--connect") == 0)
            opt.connect = v;
        else if (strcmp(a, "--conns") == 0)
            opt.conns = need_size(a, v);
        else if (strcmp(a, "--frames") == 0)
            opt.frames = need_size(a, v);
        else if (strcmp(a, "--frame-bytes") == 0)
            opt.frame_bytes = need_size(a, v);
        else if (strcmp(a, "--tunnel-bytes") == 0)
            opt.tunnel_bytes = need_size(a, v);
        else if (strcmp(a, "--write-size") == 0)
            opt.write_size = need_size(a, v);
        else if (strcmp(a, "--scenario") == 0) {
            if (strcmp(v, "fragmented") == 0)
                opt.write_size = 64;
            else if (strcmp(v, "coalesced") == 0)
                opt.write_size = 16 * 1024;
            else
                hx_die(PROG, "unknown scenario %s", v);
        } else if (strcmp(a, "--duration") == 0) {
            if (hx_parse_double(v, &opt.duration_s) != 0)
                hx_die(PROG, "bad --duration %s", v);
        } else if (strcmp(a, "--timeout") == 0) {
            if (hx_parse_double(v, &opt.timeout_s) != 0)
                hx_die(PROG, "bad --timeout %s", v);
        } else if (strcmp(a, "--proxy-pid") == 0)
            opt.proxy_pid = strtol(v, NULL, 10);
        else if (strcmp(a, "--json") == 0)
            opt.json_path = v;
        else if (strcmp(a, "--meta") == 0) {
            char *eq = strchr(v, '=');
            if (!eq || opt.nmeta == MAX_META)
                hx_die(PROG, "bad --meta %s", v);
            *eq = '\0';
            opt.meta_key[opt.nmeta] = v;
            opt.meta_val[opt.nmeta++] = eq + 1;
        } else
            usage();
    }
    if (!opt.connect)
        hx_die(PROG, "--connect is required");
    if (opt.conns == 0 || opt.write_size == 0 || opt.frame_bytes == 0)
        hx_die(PROG, "--conns, --write-size and --frame-bytes must be > 0");
}

/* Builds the header and the tunnel pool and precomputes the expected hash of
 * each variant's whole stream, so sending costs no hashing. */
static void build_payloads(void)
{
    static const char tunnel_line[] = "TUNNEL\n";
    g_header_len = opt.frames * (opt.frame_bytes + 1) + sizeof tunnel_line - 1;
    g_header = malloc(g_header_len);
    size_t pool_len = opt.tunnel_bytes + VARIANTS * VARIANT_STRIDE;
    g_pool = malloc(pool_len);
    if (!g_header || !g_pool)
        hx_die(PROG, "out of memory");
    uint8_t *p = g_header;
    for (size_t f = 0; f < opt.frames; f++) {
        char name[32];
        int n = snprintf(name, sizeof name, "ROUTE r%02zu ", f % 100);
        for (size_t i = 0; i < opt.frame_bytes; i++)
            *p++ = i < (size_t)n ? (uint8_t)name[i] : (uint8_t)('a' + (f + i) % 26);
        *p++ = '\n';
    }
    memcpy(p, tunnel_line, sizeof tunnel_line - 1);

    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
    for (size_t i = 0; i < pool_len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g_pool[i] = (uint8_t)(x >> 24);
        /* A parser that kept looking for lines inside the tunnel would see
         * a line longer than the default max line and cut the stream. */
        if (i < NO_NEWLINE_SPAN + VARIANTS * VARIANT_STRIDE && g_pool[i] == '\n')
            g_pool[i] = 'n';
    }
    uint64_t h = hx_fnv1a64(HX_FNV_OFFSET, g_header, g_header_len);
    for (int v = 0; v < VARIANTS; v++)
        g_expect_hash[v] = hx_fnv1a64(h, g_pool + (size_t)v * VARIANT_STRIDE, opt.tunnel_bytes);
    g_total = g_header_len + opt.tunnel_bytes;
}

static void record_failure(const char *what)
{
    g_failed++;
    if (g_error[0] == '\0')
        snprintf(g_error, sizeof g_error, "%s", what);
}

static int conn_start(dconn *c)
{
    c->fd = hx_connect(&g_addr, 1);
    if (c->fd < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
        record_failure(msg);
        c->state = C_IDLE;
        return -1;
    }
    c->variant = (int)(g_started % VARIANTS);
    g_started++;
    c->state = C_CONNECTING;
    c->t_start = hx_now_ns();
    c->sent = 0;
    c->reply_len = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        hx_die(PROG, "epoll_ctl: %s", strerror(errno));
    return 0;
}

static void conn_finish(dconn *c, const char *failure)
{
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_IDLE;
    if (failure) {
        record_failure(failure);
        return;
    }
    if (g_nlat == g_lat_cap) {
        g_lat_cap = g_lat_cap ? 2 * g_lat_cap : 1024;
        g_lat = realloc(g_lat, g_lat_cap * sizeof *g_lat);
        if (!g_lat)
            hx_die(PROG, "out of memory");
    }
    g_lat[g_nlat++] = hx_now_ns() - c->t_start;
    g_done++;
    g_bytes += g_total;
}

/* Writes the next chunk of exactly write_size bytes (or what is left),
 * spanning the header/tunnel boundary with one writev. */
static void conn_send(dconn *c)
{
    size_t want = g_total - c->sent < opt.write_size ? g_total - c->sent : opt.write_size;
    struct iovec iov[2];
    int n = 0;
    size_t off = c->sent, left = want;
    if (off < g_header_len) {
        size_t k = g_header_len - off < left ? g_header_len - off : left;
        iov[n++] = (struct iovec){g_header + off, k};
        off += k;
        left -= k;
    }
    if (left > 0)
        iov[n++] = (struct iovec){g_pool + (size_t)c->variant * VARIANT_STRIDE +
                                      (off - g_header_len), left};
    ssize_t w = writev(c->fd, iov, n);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        char msg[128];
        snprintf(msg, sizeof msg, "write: %s", strerror(errno));
        conn_finish(c, msg);
        return;
    }
    c->sent += (size_t)w;
    if (c->sent == g_total) {
        shutdown(c->fd, SHUT_WR);
        c->state = C_REPLY;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void conn_reply(dconn *c)
{
    ssize_t r = read(c->fd, c->reply + c->reply_len, sizeof c->reply - 1 - c->reply_len);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        char msg[128];
        snprintf(msg, sizeof msg, "read reply: %s", strerror(errno));
        conn_finish(c, msg);
        return;
    }
    if (r > 0) {
        c->reply_len += (size_t)r;
        if (c->reply_len < sizeof c->reply - 1)
            return;
    }
    c->reply[c->reply_len] = '\0';
    uint64_t n, h;
    char nl;
    if (sscanf(c->reply, "OK %" SCNu64 " %16" SCNx64 "%c", &n, &h, &nl) != 3 || nl != '\n' ||
        strlen(c->reply) != c->reply_len) {
        char msg[160];
        snprintf(msg, sizeof msg, "bad reply (%zu bytes): %.80s", c->reply_len, c->reply);
        conn_finish(c, msg);
    } else if (n != g_total || h != g_expect_hash[c->variant]) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "checksum mismatch: sink got %" PRIu64 " bytes %016" PRIx64
                 ", sent %zu bytes %016" PRIx64, n, h, g_total, g_expect_hash[c->variant]);
        conn_finish(c, msg);
    } else {
        conn_finish(c, NULL);
    }
}

static void conn_event(dconn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "connect: %s", strerror(err));
            conn_finish(c, msg);
            return;
        }
        c->state = C_SENDING;
    }
    if (c->state == C_SENDING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        conn_send(c);
    else if (c->state == C_REPLY)
        conn_reply(c);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted latencies, in milliseconds. */
static double pct_ms(double p)
{
    if (g_nlat == 0)
        return 0;
    size_t rank = (size_t)ceil(p * (double)g_nlat);
    if (rank < 1)
        rank = 1;
    return (double)g_lat[rank - 1] / 1e6;
}

static void write_json(FILE *f, double wall_s, int have_proxy, const proc_stats *p0,
                       const proc_stats *p1, uint64_t driver_cpu_ns)
{
    qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u64);
    double mib = (double)g_bytes / (1024.0 * 1024.0);
    fprintf(f, "{\n");
    for (int i = 0; i < opt.nmeta; i++)
        fprintf(f, "  \"%s\": \"%s\",\n", opt.meta_key[i], opt.meta_val[i]);
    fprintf(f, "  \"conns\": %zu,\n", opt.conns);
    fprintf(f, "  \"frames\": %zu,\n", opt.frames);
    fprintf(f, "  \"frame_bytes\": %zu,\n", opt.frame_bytes);
    fprintf(f, "  \"tunnel_bytes\": %zu,\n", opt.tunnel_bytes);
    fprintf(f, "  \"write_size\": %zu,\n", opt.write_size);
    fprintf(f, "  \"duration_target_s\": %.3f,\n", opt.duration_s);
    fprintf(f, "  \"connections_completed\": %" PRIu64 ",\n", g_done);
    fprintf(f, "  \"connections_failed\": %" PRIu64 ",\n", g_failed);
    fprintf(f, "  \"bytes\": %" PRIu64 ",\n", g_bytes);
    fprintf(f, "  \"wall_s\": %.6f,\n", wall_s);
    fprintf(f, "  \"throughput_mib_s\": %.2f,\n", wall_s > 0 ? mib / wall_s : 0);
    if (have_proxy) {
        uint64_t cpu = p1->cpu_ns - p0->cpu_ns;
        fprintf(f, "  \"service_cpu_ns\": %" PRIu64 ",\n", cpu);
        fprintf(f, "  \"service_cpu_cores\": %.4f,\n", wall_s > 0 ? (double)cpu / 1e9 / wall_s : 0);
        fprintf(f, "  \"service_ns_per_byte\": %.4f,\n",
                g_bytes ? (double)cpu / (double)g_bytes : 0);
        fprintf(f, "  \"service_threads\": %u,\n", p1->threads);
        fprintf(f, "  \"voluntary_ctxt_switches\": %" PRIu64 ",\n", p1->vcsw - p0->vcsw);
        fprintf(f, "  \"involuntary_ctxt_switches\": %" PRIu64 ",\n", p1->ivcsw - p0->ivcsw);
        fprintf(f, "  \"peak_rss_kib\": %" PRIu64 ",\n", p1->hwm_kib);
        fprintf(f, "  \"rss_kib\": %" PRIu64 ",\n", p1->rss_kib);
        fprintf(f, "  \"rss_start_kib\": %" PRIu64 ",\n", p0->rss_kib);
    } else {
        fprintf(f, "  \"service_cpu_ns\": null,\n  \"service_cpu_cores\": null,\n"
                   "  \"service_ns_per_byte\": null,\n  \"service_threads\": null,\n"
                   "  \"voluntary_ctxt_switches\": null,\n  \"involuntary_ctxt_switches\": null,\n"
                   "  \"peak_rss_kib\": null,\n  \"rss_kib\": null,\n  \"rss_start_kib\": null,\n");
    }
    fprintf(f, "  \"latency_p50_ms\": %.3f,\n", pct_ms(0.50));
    fprintf(f, "  \"latency_p99_ms\": %.3f,\n", pct_ms(0.99));
    fprintf(f, "  \"latency_p999_ms\": %.3f,\n", pct_ms(0.999));
    fprintf(f, "  \"latency_max_ms\": %.3f,\n", g_nlat ? (double)g_lat[g_nlat - 1] / 1e6 : 0);
    fprintf(f, "  \"driver_cpu_ns\": %" PRIu64 ",\n", driver_cpu_ns);
    fprintf(f, "  \"checksum_ok\": %s,\n", g_failed == 0 && g_done > 0 ? "true" : "false");
    fprintf(f, "  \"error\": \"");
    for (const char *s = g_error; *s; s++)
        fputc(*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 ? '?' : *s, f);
    fprintf(f, "\"\n}\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--idle") == 0)
            return driver_idle_main(argc, argv); /* see driver_idle.c */
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (hx_addr_parse(opt.connect, &g_addr) != 0)
        return 2;
    build_payloads();
    dconn *conns = calloc(opt.conns, sizeof *conns);
    struct epoll_event *events = calloc(opt.conns, sizeof *events);
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !events || g_epfd < 0)
        hx_die(PROG, "setup failed");

    proc_stats p0 = {0}, p1 = {0};
    int have_proxy = opt.proxy_pid > 0 && proc_stats_read((pid_t)opt.proxy_pid, &p0) == 0;
    if (opt.proxy_pid > 0 && !have_proxy)
        hx_die(PROG, "cannot read /proc stats of pid %ld", opt.proxy_pid);

    uint64_t t0 = hx_now_ns();
    uint64_t t_stop = t0 + (uint64_t)(opt.duration_s * 1e9);
    uint64_t deadline = t_stop + (uint64_t)(opt.timeout_s * 1e9);
    size_t active = 0;
    for (size_t i = 0; i < opt.conns; i++)
        if (conn_start(&conns[i]) == 0)
            active++;
    int timed_out = 0;
    while (active > 0) {
        int n = epoll_wait(g_epfd, events, (int)opt.conns, 1000);
        if (n < 0 && errno != EINTR)
            hx_die(PROG, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            dconn *c = events[i].data.ptr;
            conn_event(c, events[i].events);
            if (c->state == C_IDLE) {
                active--;
                if (hx_now_ns() < t_stop && g_failed == 0 && conn_start(c) == 0)
                    active++;
            }
        }
        if (hx_now_ns() > deadline) {
            timed_out = 1;
            break;
        }
    }
    uint64_t t1 = hx_now_ns();
    if (have_proxy && proc_stats_read((pid_t)opt.proxy_pid, &p1) != 0) {
        have_proxy = 0;
        record_failure("proxy exited during the run");
    }
    if (timed_out) {
        char msg[96];
        snprintf(msg, sizeof msg, "timeout: %zu connections unfinished", active);
        for (size_t i = 0; i < opt.conns; i++)
            if (conns[i].state != C_IDLE)
                conn_finish(&conns[i], msg);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t driver_cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
                             (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;

    FILE *out = stdout;
    if (opt.json_path && !(out = fopen(opt.json_path, "w")))
        hx_die(PROG, "cannot write %s: %s", opt.json_path, strerror(errno));
    write_json(out, (double)(t1 - t0) / 1e9, have_proxy, &p0, &p1, driver_cpu_ns);
    if (out != stdout)
        fclose(out);
    if (g_failed)
        fprintf(stderr, PROG ": %" PRIu64 " connection(s) failed: %s\n", g_failed, g_error);
    close(g_epfd);
    free(conns);
    free(events);
    free(g_lat);
    free(g_header);
    free(g_pool);
    return g_failed == 0 && g_done > 0 ? 0 : 1;
}
