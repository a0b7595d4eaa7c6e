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
 * connections are replaced until the duration has passed. With --total N
 * (the churn scenario: many short connections) finished connections are
 * replaced until N have started, whatever the duration.
 *
 * With --proxy-pid the proxy process is sampled from /proc right before the
 * first connect and right after the last reply, so its CPU time (all
 * threads), context switches and peak RSS cover exactly the measured window.
 * The run is written as one JSON object (cJSON) to --json or stdout, with
 * every connection's latency in "latency_ns"; bench/benchstats.py turns
 * those into percentiles (the one place medians and percentiles are
 * computed). Exit status: 0 when every connection verified, 1 otherwise.
 *
 * One thread, level-triggered epoll: each readiness pass writes one chunk per
 * writable connection, so connections advance round-robin.
 *
 * With --idle the driver measures idle connections instead (driver_idle.c). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cjson/cJSON.h>

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
    size_t conns, total, frames, frame_bytes, tunnel_bytes, write_size;
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

static void usage(FILE *out)
{
    fprintf(out, "usage: " PROG " --connect ADDR [--conns N] [--total N] [--frames N] [--frame-bytes N]\n"
           "  [--tunnel-bytes SIZE] [--write-size SIZE | --scenario fragmented|coalesced]\n"
           "  [--duration SEC] [--timeout SEC] [--proxy-pid PID] [--json FILE]\n"
           "  [--meta KEY=VALUE]... [--version]\n"
           "ADDR is IPV4:PORT, [IPV6]:PORT or unix:PATH; sizes take K, M or G.\n");
}

enum { O_CONNECT = 256, O_CONNS, O_TOTAL, O_FRAMES, O_FRAME_BYTES, O_TUNNEL_BYTES, O_WRITE_SIZE,
       O_SCENARIO, O_DURATION, O_TIMEOUT, O_PROXY_PID, O_JSON, O_META };

static void parse_args(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"connect", required_argument, NULL, O_CONNECT},
        {"conns", required_argument, NULL, O_CONNS},
        {"total", required_argument, NULL, O_TOTAL},
        {"frames", required_argument, NULL, O_FRAMES},
        {"frame-bytes", required_argument, NULL, O_FRAME_BYTES},
        {"tunnel-bytes", required_argument, NULL, O_TUNNEL_BYTES},
        {"write-size", required_argument, NULL, O_WRITE_SIZE},
        {"scenario", required_argument, NULL, O_SCENARIO},
        {"duration", required_argument, NULL, O_DURATION},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"proxy-pid", required_argument, NULL, O_PROXY_PID},
        {"json", required_argument, NULL, O_JSON},
        {"meta", required_argument, NULL, O_META},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = cli_next_option(argc, argv, long_options, usage)) != -1) {
        switch (c) {
        case O_CONNECT:
            hx_addr_option("--connect", optarg, &g_addr);
            opt.connect = optarg;
            break;
        case O_CONNS:
            opt.conns = (size_t)cli_size("--conns", optarg, 1, 1000000);
            break;
        case O_TOTAL:
            opt.total = (size_t)cli_size("--total", optarg, 1, 1000000000);
            break;
        case O_FRAMES:
            opt.frames = (size_t)cli_size("--frames", optarg, 0, 1u << 24);
            break;
        case O_FRAME_BYTES:
            opt.frame_bytes = (size_t)cli_size("--frame-bytes", optarg, 1, CLI_GIB);
            break;
        case O_TUNNEL_BYTES:
            opt.tunnel_bytes = (size_t)cli_size("--tunnel-bytes", optarg, 0, 64 * CLI_GIB);
            break;
        case O_WRITE_SIZE:
            opt.write_size = (size_t)cli_size("--write-size", optarg, 1, CLI_GIB);
            break;
        case O_SCENARIO:
            if (strcmp(optarg, "fragmented") == 0)
                opt.write_size = 64;
            else if (strcmp(optarg, "coalesced") == 0)
                opt.write_size = 16 * 1024;
            else
                cli_die("--scenario: '%s' is neither fragmented nor coalesced", optarg);
            break;
        case O_DURATION:
            opt.duration_s = cli_seconds("--duration", optarg, 86400);
            break;
        case O_TIMEOUT:
            opt.timeout_s = cli_seconds("--timeout", optarg, 86400);
            break;
        case O_PROXY_PID:
            opt.proxy_pid = (long)cli_size("--proxy-pid", optarg, 1, INT32_MAX);
            break;
        case O_JSON:
            opt.json_path = optarg;
            break;
        case O_META: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                cli_die("--meta: '%s' is not KEY=VALUE", optarg);
            if (opt.nmeta == MAX_META)
                cli_die("--meta: at most %d", MAX_META);
            *eq = '\0';
            opt.meta_key[opt.nmeta] = optarg;
            opt.meta_val[opt.nmeta++] = eq + 1;
            break;
        }
        }
    }
    if (!opt.connect)
        cli_die("--connect is required");
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
        cli_fail("out of memory");
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
    uint64_t h = fnv1a64(FNV1A64_OFFSET, g_header, g_header_len);
    for (int v = 0; v < VARIANTS; v++)
        g_expect_hash[v] = fnv1a64(h, g_pool + (size_t)v * VARIANT_STRIDE, opt.tunnel_bytes);
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
        cli_fail("epoll_ctl: %s", strerror(errno));
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
            cli_fail("out of memory");
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

/* The run as one JSON object; NULL when out of memory. */
static char *run_json(double wall_s, int have_proxy, const proc_stats *p0, const proc_stats *p1,
                      uint64_t driver_cpu_ns)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < opt.nmeta; i++)
        cJSON_AddStringToObject(o, opt.meta_key[i], opt.meta_val[i]);
    cJSON_AddNumberToObject(o, "conns", (double)opt.conns);
    cJSON_AddNumberToObject(o, "total", (double)opt.total);
    cJSON_AddNumberToObject(o, "frames", (double)opt.frames);
    cJSON_AddNumberToObject(o, "frame_bytes", (double)opt.frame_bytes);
    cJSON_AddNumberToObject(o, "tunnel_bytes", (double)opt.tunnel_bytes);
    cJSON_AddNumberToObject(o, "write_size", (double)opt.write_size);
    cJSON_AddNumberToObject(o, "duration_target_s", opt.duration_s);
    cJSON_AddNumberToObject(o, "connections_completed", (double)g_done);
    cJSON_AddNumberToObject(o, "connections_failed", (double)g_failed);
    cJSON_AddNumberToObject(o, "bytes", (double)g_bytes);
    cJSON_AddNumberToObject(o, "wall_s", wall_s);
    cJSON_AddNumberToObject(o, "throughput_mib_s",
                            wall_s > 0 ? (double)g_bytes / (1024.0 * 1024.0) / wall_s : 0);
    if (have_proxy) {
        uint64_t cpu = p1->cpu_ns - p0->cpu_ns;
        cJSON_AddNumberToObject(o, "service_cpu_ns", (double)cpu);
        cJSON_AddNumberToObject(o, "service_cpu_cores",
                                wall_s > 0 ? (double)cpu / 1e9 / wall_s : 0);
        cJSON_AddNumberToObject(o, "service_ns_per_byte",
                                g_bytes ? (double)cpu / (double)g_bytes : 0);
        cJSON_AddNumberToObject(o, "service_us_per_conn",
                                g_done ? (double)cpu / 1e3 / (double)g_done : 0);
        cJSON_AddNumberToObject(o, "service_threads", p1->threads);
        cJSON_AddNumberToObject(o, "voluntary_ctxt_switches", (double)(p1->vcsw - p0->vcsw));
        cJSON_AddNumberToObject(o, "involuntary_ctxt_switches",
                                (double)(p1->ivcsw - p0->ivcsw));
        cJSON_AddNumberToObject(o, "peak_rss_kib", (double)p1->hwm_kib);
        cJSON_AddNumberToObject(o, "rss_kib", (double)p1->rss_kib);
        cJSON_AddNumberToObject(o, "rss_start_kib", (double)p0->rss_kib);
    } else {
        static const char *const absent[] = {
            "service_cpu_ns",          "service_cpu_cores",         "service_ns_per_byte",
            "service_us_per_conn",
            "service_threads",         "voluntary_ctxt_switches",   "involuntary_ctxt_switches",
            "peak_rss_kib",            "rss_kib",                   "rss_start_kib"};
        for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
            cJSON_AddNullToObject(o, absent[i]);
    }
    cJSON *lat = cJSON_AddArrayToObject(o, "latency_ns");
    for (size_t i = 0; lat && i < g_nlat; i++)
        cJSON_AddItemToArray(lat, cJSON_CreateNumber((double)g_lat[i]));
    cJSON_AddNumberToObject(o, "driver_cpu_ns", (double)driver_cpu_ns);
    cJSON_AddBoolToObject(o, "checksum_ok", g_failed == 0 && g_done > 0);
    cJSON_AddStringToObject(o, "error", g_error);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

int main(int argc, char **argv)
{
    cli_init(PROG);
    /* --idle first selects the idle mode, which parses its own options
     * with getopt_long (driver_idle.c), like a mode word. */
    if (argc > 1 && strcmp(argv[1], "--idle") == 0)
        return driver_idle_main(argc, argv);
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    build_payloads();
    dconn *conns = calloc(opt.conns, sizeof *conns);
    struct epoll_event *events = calloc(opt.conns, sizeof *events);
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !events || g_epfd < 0)
        cli_fail("setup failed");

    proc_stats p0 = {0}, p1 = {0};
    int have_proxy = opt.proxy_pid > 0 && proc_stats_read((pid_t)opt.proxy_pid, &p0) == 0;
    if (opt.proxy_pid > 0 && !have_proxy)
        cli_fail("cannot read /proc stats of pid %ld", opt.proxy_pid);

    uint64_t t0 = hx_now_ns();
    uint64_t t_stop = t0 + (uint64_t)(opt.duration_s * 1e9);
    uint64_t deadline = t_stop + (uint64_t)(opt.timeout_s * 1e9);
    size_t active = 0;
    if (opt.total && opt.conns > opt.total)
        opt.conns = opt.total;
    for (size_t i = 0; i < opt.conns; i++)
        if (conn_start(&conns[i]) == 0)
            active++;
    int timed_out = 0;
    while (active > 0) {
        int n = epoll_wait(g_epfd, events, (int)opt.conns, 1000);
        if (n < 0 && errno != EINTR)
            cli_fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            dconn *c = events[i].data.ptr;
            conn_event(c, events[i].events);
            if (c->state == C_IDLE) {
                active--;
                int more = opt.total ? g_started < opt.total : hx_now_ns() < t_stop;
                if (more && g_failed == 0 && conn_start(c) == 0)
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
        cli_fail("cannot write %s: %s", opt.json_path, strerror(errno));
    char *json = run_json((double)(t1 - t0) / 1e9, have_proxy, &p0, &p1, driver_cpu_ns);
    if (!json)
        cli_fail("out of memory writing the result");
    fprintf(out, "%s\n", json);
    cJSON_free(json);
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
