/* proxy_main.c - the stream harness proxy: options, accept loop, workers.
 *
 *   bh_stream_proxy --impl handoff|manual_vec|raw_copy|libevent
 *     --listen 127.0.0.1:PORT|unix:PATH --upstream 127.0.0.1:PORT|unix:PATH
 *     [--threads N] [--read-reserve BYTES] [--write-budget BYTES]
 *     [--max-line BYTES] [--completion ticket|fire_and_forget]
 *     [--stats-file FILE]
 *
 * Speaks the harness wire protocol of docs/design.md. Prints "listening PORT" (or
 * the socket path) once it accepts. On SIGTERM/SIGINT it stops accepting,
 * closes every connection, joins its workers and exits 0; with --stats-file it
 * first writes its own getrusage (whole lifetime) there as JSON members. */
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

static size_t need_size(const char *flag, const char *v)
{
    size_t n;
    if (hx_parse_size(v, &n) != 0 || n == 0)
        hx_die(PROG, "bad value for %s: %s", flag, v);
    return n;
}

static void write_rusage(const char *path)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    long long cpu_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    fprintf(f,
            "  \"proxy_rusage_cpu_ns\": %lld,\n"
            "  \"proxy_rusage_maxrss_kib\": %ld,\n"
            "  \"proxy_rusage_nvcsw\": %ld,\n"
            "  \"proxy_rusage_nivcsw\": %ld\n",
            cpu_us * 1000, ru.ru_maxrss, ru.ru_nvcsw, ru.ru_nivcsw);
    fclose(f);
}

int main(int argc, char **argv)
{
    proxy_config cfg = {
        .impl = NULL, .threads = 1, .read_reserve = 16 * 1024, .write_budget = 0,
        .max_line = 64 * 1024, .fire_and_forget = 0,
    };
    const char *listen_text = NULL, *upstream_text = NULL, *stats_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            hx_die(PROG, "missing value for %s", a);
        const char *v = argv[++i];
        if (strcmp(a, "--impl") == 0)
            cfg.impl = v;
        else if (strcmp(a, "--listen") == 0)
            listen_text = v;
        else if (strcmp(a, "--upstream") == 0)
            upstream_text = v;
        else if (strcmp(a, "--threads") == 0)
            cfg.threads = (unsigned)need_size(a, v);
        else if (strcmp(a, "--read-reserve") == 0)
            cfg.read_reserve = need_size(a, v);
        else if (strcmp(a, "--write-budget") == 0)
            cfg.write_budget = need_size(a, v);
        else if (strcmp(a, "--max-line") == 0)
            cfg.max_line = need_size(a, v);
        else if (strcmp(a, "--completion") == 0) {
            if (strcmp(v, "ticket") == 0)
                cfg.fire_and_forget = 0;
            else if (strcmp(v, "fire_and_forget") == 0)
                cfg.fire_and_forget = 1;
            else
                hx_die(PROG, "unknown completion mode %s", v);
        } else if (strcmp(a, "--stats-file") == 0)
            stats_path = v;
        else
            hx_die(PROG, "unknown option %s", a);
    }
    if (!cfg.impl || !listen_text || !upstream_text)
        hx_die(PROG, "--impl, --listen and --upstream are required");
    if (cfg.write_budget == 0)
        cfg.write_budget = 2 * cfg.read_reserve;

    const proxy_impl *impls[] = {&proxy_impl_handoff, &proxy_impl_manual_vec,
                                 &proxy_impl_raw_copy, &proxy_impl_libevent};
    const proxy_impl *impl = NULL;
    for (size_t i = 0; i < sizeof impls / sizeof *impls; i++)
        if (strcmp(impls[i]->name, cfg.impl) == 0)
            impl = impls[i];
    if (!impl)
        hx_die(PROG, "unknown --impl %s (handoff, manual_vec, raw_copy, libevent)", cfg.impl);

    hx_addr listen_addr, upstream_addr;
    if (hx_addr_parse(listen_text, &listen_addr) != 0 ||
        hx_addr_parse(upstream_text, &upstream_addr) != 0)
        return 2;
    cfg.is_tcp = !upstream_addr.is_unix;
    if (listen_addr.is_unix != upstream_addr.is_unix)
        hx_die(PROG, "--listen and --upstream must use the same transport");

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
        hx_die(PROG, "signalfd: %s", strerror(errno));

    proxy_worker *workers = calloc(cfg.threads, sizeof *workers);
    if (!workers)
        hx_die(PROG, "out of memory");
    for (unsigned i = 0; i < cfg.threads; i++) {
        proxy_worker *w = &workers[i];
        w->index = i;
        w->cfg = &cfg;
        w->impl = impl;
        pthread_mutex_init(&w->lock, NULL);
        if (impl->init(w) != 0)
            hx_die(PROG, "worker %u: init failed", i);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            hx_die(PROG, "pthread_create failed");
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
            hx_die(PROG, "poll: %s", strerror(errno));
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
        write_rusage(stats_path);
    return 0;
}
