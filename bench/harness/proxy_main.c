/* proxy_main.c - the stream harness proxy: options, accept loop, workers.
 *
 *   bh_stream_proxy --impl handoff|handoff_tunnel|manual_vec|uv_copy|epoll_copy|libevent
 *     --listen ADDR --upstream ADDR (IPV4:PORT, [IPV6]:PORT or unix:PATH)
 *     [--threads N] [--read-reserve BYTES] [--write-budget BYTES]
 *     [--max-line BYTES] [--completion ticket|fire_and_forget]
 *     [--stats-file FILE] [--version]
 *
 * Speaks the harness wire protocol of docs/design.md. Prints "listening PORT" (or
 * the socket path) once it accepts. On SIGTERM/SIGINT it stops accepting,
 * closes every connection, joins its workers and exits 0; with --stats-file it
 * first writes its configuration in bytes and its own getrusage (whole
 * lifetime) there as a JSON object (cJSON). */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness_common.h"
#include "proxy.h"

#define PROG "bh_stream_proxy"

int proxy_worker_next(proxy_worker *w, proxy_pair *out)
{
    int got = 0;
    pthread_mutex_lock(&w->lock);
    if (w->nqueue > 0) {
        *out = w->queue[0];
        memmove(w->queue, w->queue + 1, (w->nqueue - 1) * sizeof *w->queue);
        w->nqueue--;
        got = 1;
    }
    pthread_mutex_unlock(&w->lock);
    return got;
}

int proxy_worker_stopping(proxy_worker *w)
{
    pthread_mutex_lock(&w->lock);
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static void *worker_main(void *arg)
{
    proxy_worker *w = arg;
    w->impl->run(w);
    return NULL;
}

static int worker_hand(proxy_worker *w, proxy_pair p)
{
    pthread_mutex_lock(&w->lock);
    if (w->nqueue == w->capqueue) {
        size_t cap = w->capqueue ? 2 * w->capqueue : 64;
        proxy_pair *q = realloc(w->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&w->lock);
            return -1;
        }
        w->queue = q;
        w->capqueue = cap;
    }
    w->queue[w->nqueue++] = p;
    pthread_mutex_unlock(&w->lock);
    w->impl->wake(w);
    return 0;
}

/* ---- accepting under descriptor exhaustion ------------------------------
 * When accept() or the upstream socket fails for lack of descriptors, the
 * accept loop stops polling the listener and retries every ACCEPT_RETRY_MS
 * (the backlog waits in the kernel; connections already handed to workers
 * are served meanwhile, and their closing frees descriptors). A client
 * accepted before its upstream socket failed is kept and served first. One
 * line is logged when such an episode starts and one when it ends, which is
 * once the backlog has been worked off (so descriptors freed one at a time
 * under a long queue do not log a line each). */
#define ACCEPT_RETRY_MS 100

typedef struct accept_gate {
    int paused;         /* the next poll leaves the listener out, with a timeout */
    int pending_fd;     /* accepted client still waiting for an upstream, or -1 */
    int in_episode;     /* descriptors ran out and no accept succeeded since */
    uint64_t refusals;  /* failed attempts in the current episode */
    uint64_t episodes;
} accept_gate;

static int fds_exhausted(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void gate_pause(accept_gate *g, const char *what, int pending_fd)
{
    int err = errno;
    g->paused = 1;
    g->pending_fd = pending_fd;
    g->refusals++;
    if (g->in_episode)
        return;
    g->in_episode = 1;
    g->episodes++;
    fprintf(stderr, PROG ": %s: %s: pausing accepts, retrying every %d ms (episode %llu)\n",
            what, strerror(err), ACCEPT_RETRY_MS, (unsigned long long)g->episodes);
}

/* A client was served: the episode ends once no connection waits. */
static void gate_served(accept_gate *g, int lfd)
{
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    if (!g->in_episode || poll(&pf, 1, 0) != 0)
        return;
    fprintf(stderr, PROG ": accepting again after %llu refused attempts (episode %llu)\n",
            (unsigned long long)g->refusals, (unsigned long long)g->episodes);
    g->in_episode = 0;
    g->refusals = 0;
}

static void write_rusage(const char *path, const proxy_config *cfg)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long cpu_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "threads", cfg->threads);
    cJSON_AddNumberToObject(o, "read_reserve", (double)cfg->read_reserve);
    cJSON_AddNumberToObject(o, "write_budget", (double)cfg->write_budget);
    cJSON_AddNumberToObject(o, "max_line", (double)cfg->max_line);
    cJSON_AddNumberToObject(o, "proxy_rusage_cpu_ns", (double)cpu_us * 1000);
    cJSON_AddNumberToObject(o, "proxy_rusage_maxrss_kib", (double)ru.ru_maxrss);
    cJSON_AddNumberToObject(o, "proxy_rusage_nvcsw", (double)ru.ru_nvcsw);
    cJSON_AddNumberToObject(o, "proxy_rusage_nivcsw", (double)ru.ru_nivcsw);
    uint64_t tunnel, spliced;
    proxy_tunnel_totals(&tunnel, &spliced);
    cJSON_AddNumberToObject(o, "proxy_tunnel_bytes", (double)tunnel);
    cJSON_AddNumberToObject(o, "proxy_spliced_bytes", (double)spliced);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    FILE *f = fopen(path, "w");
    if (!f || !text || fprintf(f, "%s\n", text) < 0)
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
    if (f)
        fclose(f);
    cJSON_free(text);
}

enum { O_IMPL = 256, O_LISTEN, O_UPSTREAM, O_THREADS, O_READ_RESERVE, O_WRITE_BUDGET,
       O_MAX_LINE, O_COMPLETION, O_STATS_FILE };

static void usage(FILE *out)
{
    fprintf(out, "usage: " PROG " --impl handoff|handoff_tunnel|manual_vec|uv_copy|epoll_copy|libevent\n"
                 "  --listen ADDR"
                 "  --upstream ADDR [--threads N] [--read-reserve SIZE] [--write-budget SIZE]\n"
                 "  [--max-line SIZE] [--completion ticket|fire_and_forget] [--stats-file FILE]\n"
                 "  [--version]\n"
                 "ADDR is IPV4:PORT, [IPV6]:PORT or unix:PATH; sizes take K, M or G.\n");
}

int main(int argc, char **argv)
{
    proxy_config cfg = {
        .impl = NULL, .threads = 1, .read_reserve = 16 * 1024, .write_budget = 0,
        .max_line = 64 * 1024, .fire_and_forget = 0,
    };
    static const struct option long_options[] = {
        {"impl", required_argument, NULL, O_IMPL},
        {"listen", required_argument, NULL, O_LISTEN},
        {"upstream", required_argument, NULL, O_UPSTREAM},
        {"threads", required_argument, NULL, O_THREADS},
        {"read-reserve", required_argument, NULL, O_READ_RESERVE},
        {"write-budget", required_argument, NULL, O_WRITE_BUDGET},
        {"max-line", required_argument, NULL, O_MAX_LINE},
        {"completion", required_argument, NULL, O_COMPLETION},
        {"stats-file", required_argument, NULL, O_STATS_FILE},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *stats_path = NULL;
    hx_addr listen_addr, upstream_addr;
    int have_listen = 0, have_upstream = 0, c;
    cli_init(PROG);
    while ((c = cli_next_option(argc, argv, long_options, usage)) != -1) {
        switch (c) {
        case O_IMPL:
            cfg.impl = optarg;
            break;
        case O_LISTEN:
            hx_addr_option("--listen", optarg, &listen_addr);
            have_listen = 1;
            break;
        case O_UPSTREAM:
            hx_addr_option("--upstream", optarg, &upstream_addr);
            have_upstream = 1;
            break;
        case O_THREADS:
            cfg.threads = (unsigned)cli_size("--threads", optarg, 1, 1024);
            break;
        case O_READ_RESERVE:
            cfg.read_reserve = (size_t)cli_size("--read-reserve", optarg, 1, CLI_GIB);
            break;
        case O_WRITE_BUDGET:
            cfg.write_budget = (size_t)cli_size("--write-budget", optarg, 1, 64 * CLI_GIB);
            break;
        case O_MAX_LINE:
            cfg.max_line = (size_t)cli_size("--max-line", optarg, 1, CLI_GIB);
            break;
        case O_COMPLETION:
            if (strcmp(optarg, "ticket") == 0)
                cfg.fire_and_forget = 0;
            else if (strcmp(optarg, "fire_and_forget") == 0)
                cfg.fire_and_forget = 1;
            else
                cli_die("--completion: '%s' is neither ticket nor fire_and_forget", optarg);
            break;
        case O_STATS_FILE:
            stats_path = optarg;
            break;
        }
    }
    if (!cfg.impl || !have_listen || !have_upstream)
        cli_die("--impl, --listen and --upstream are required");
    if (cfg.write_budget == 0)
        cfg.write_budget = 2 * cfg.read_reserve;

    const proxy_impl *impls[] = {&proxy_impl_handoff, &proxy_impl_handoff_tunnel,
                                 &proxy_impl_manual_vec,
                                 &proxy_impl_uv_copy, &proxy_impl_epoll_copy,
                                 &proxy_impl_libevent};
    const proxy_impl *impl = NULL;
    for (size_t i = 0; i < sizeof impls / sizeof *impls; i++)
        if (strcmp(impls[i]->name, cfg.impl) == 0)
            impl = impls[i];
    if (!impl)
        cli_die("--impl: '%s' is none of handoff, handoff_tunnel, manual_vec, uv_copy, epoll_copy, libevent", cfg.impl);

    cfg.is_tcp = !upstream_addr.is_unix;
    if (listen_addr.is_unix != upstream_addr.is_unix)
        cli_die("--listen and --upstream must use the same transport");

    /* Signals are taken by the main thread only, through a signalfd; every
     * thread created below inherits the blocked mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0)
        cli_fail("signalfd: %s", strerror(errno));

    proxy_worker *workers = calloc(cfg.threads, sizeof *workers);
    if (!workers)
        cli_fail("out of memory");
    for (unsigned i = 0; i < cfg.threads; i++) {
        proxy_worker *w = &workers[i];
        w->index = i;
        w->cfg = &cfg;
        w->impl = impl;
        pthread_mutex_init(&w->lock, NULL);
        if (impl->init(w) != 0)
            cli_fail("worker %u: init failed", i);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            cli_fail("pthread_create failed");
    }

    int lfd = hx_listen(&listen_addr, 1024);
    if (lfd < 0)
        return 1;
    unsigned next = 0;
    accept_gate gate = {.pending_fd = -1};
    for (;;) {
        /* While paused the listener is not polled: the backlog waits in the
         * kernel and nothing spins. */
        struct pollfd pf[2] = {{.fd = gate.paused ? -1 : lfd, .events = POLLIN},
                               {.fd = sfd, .events = POLLIN}};
        if (poll(pf, 2, gate.paused ? ACCEPT_RETRY_MS : -1) < 0) {
            if (errno == EINTR)
                continue;
            cli_fail("poll: %s", strerror(errno));
        }
        if (pf[1].revents)
            break;
        if (!gate.paused && !pf[0].revents)
            continue;
        gate.paused = 0;
        /* A client accepted before the descriptors ran out goes first. */
        int cfd = gate.pending_fd;
        gate.pending_fd = -1;
        if (cfd < 0 && (cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
            if (fds_exhausted(errno))
                gate_pause(&gate, "accept", -1);
            continue;
        }
        int ufd = hx_connect(&upstream_addr, 0);
        if (ufd < 0) {
            if (fds_exhausted(errno)) {
                gate_pause(&gate, "upstream socket", cfd);
                continue;
            }
            fprintf(stderr, PROG ": upstream connect: %s\n", strerror(errno));
            close(cfd);
            continue;
        }
        gate_served(&gate, lfd);
        if (cfg.is_tcp)
            hx_set_nodelay(cfd);
        hx_set_nonblock(cfd, 1);
        hx_set_nonblock(ufd, 1);
        proxy_pair p = {cfd, ufd};
        if (worker_hand(&workers[next], p) != 0) {
            close(cfd);
            close(ufd);
        }
        next = (next + 1) % cfg.threads;
    }

    if (gate.pending_fd >= 0)
        close(gate.pending_fd);
    close(lfd);
    if (listen_addr.is_unix)
        unlink(((struct sockaddr_un *)&listen_addr.ss)->sun_path);
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_mutex_lock(&workers[i].lock);
        workers[i].stop = 1;
        pthread_mutex_unlock(&workers[i].lock);
        impl->wake(&workers[i]);
    }
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].thread, NULL);
        impl->destroy(&workers[i]);
        /* Pairs handed over after the worker's last look are still ours. */
        for (size_t k = 0; k < workers[i].nqueue; k++) {
            close(workers[i].queue[k].client_fd);
            close(workers[i].queue[k].upstream_fd);
        }
        free(workers[i].queue);
        pthread_mutex_destroy(&workers[i].lock);
    }
    free(workers);
    close(sfd);
    if (stats_path)
        write_rusage(stats_path, &cfg);
    return 0;
}
