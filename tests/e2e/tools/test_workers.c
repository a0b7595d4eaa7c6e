/* test_workers.c - tools/workers: N workers, each a loop and a SO_REUSEPORT
 * listener on one 127.0.0.1 port, serve real connections; stops from
 * another thread and from SIGTERM end them; a failed start stops the rest.
 * The service answers each connection with one byte (its worker's index)
 * and closes; clients are blocking sockets on the test's thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "workers.h"

#define CONNS 64

typedef struct shared {
    int fail_index;              /* worker whose start fails, -1: none */
    uv_mutex_t mu;
    uv_cond_t cond;
    workers *ws;                 /* set by ready */
    int port;
    int ready;
    uv_thread_t runner;          /* thread that called workers_run */
    int on_runner[WORKERS_MAX];  /* start ran on that thread, per worker */
    int finished;                /* finish calls */
    int stops[WORKERS_MAX];      /* stop calls per worker */
    int again[WORKERS_MAX];      /* of those, with again set */
    int accepted[WORKERS_MAX];   /* connections per worker, merged by finish */
} shared;

typedef struct wstate {
    shared *sh;
    int index;
    uv_tcp_t listener;
    int accepted;
    int stops, again;
} wstate;

typedef struct answer {
    uv_tcp_t tcp;
    uv_write_t req;
    char byte;
} answer;

static void on_answer_closed(uv_handle_t *h) { free(h->data); }

static void on_answered(uv_write_t *req, int status)
{
    (void)status;
    answer *a = req->data;
    uv_close((uv_handle_t *)&a->tcp, on_answer_closed);
}

static void on_conn(uv_stream_t *server, int status)
{
    wstate *st = server->data;
    if (status < 0)
        return;
    answer *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->tcp.data = a->req.data = a;
    a->byte = (char)st->index;
    uv_tcp_init(server->loop, &a->tcp);
    if (uv_accept(server, (uv_stream_t *)&a->tcp) != 0) {
        uv_close((uv_handle_t *)&a->tcp, on_answer_closed);
        return;
    }
    st->accepted++;
    uv_buf_t b = uv_buf_init(&a->byte, 1);
    assert_int_equal(uv_write(&a->req, (uv_stream_t *)&a->tcp, &b, 1, on_answered), 0);
}

static int w_start(worker *w, uv_loop_t *loop, void *ctx, void **state)
{
    shared *sh = ctx;
    wstate *st = calloc(1, sizeof *st);
    assert_non_null(st);
    *state = st;
    st->sh = sh;
    st->index = workers_index(w);
    uv_thread_t self = uv_thread_self();
    sh->on_runner[st->index] = uv_thread_equal(&self, &sh->runner);
    uv_tcp_init(loop, &st->listener);
    st->listener.data = st;
    if (st->index == sh->fail_index)
        return UV_EADDRINUSE;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    return workers_listen(w, &st->listener, (const struct sockaddr *)&addr, 128, on_conn);
}

static void w_stop(void *state, int again)
{
    wstate *st = state;
    st->stops++;
    st->again += again;
    if (!uv_is_closing((uv_handle_t *)&st->listener))
        uv_close((uv_handle_t *)&st->listener, NULL);
}

static void w_finish(worker *w, void *state, void *ctx)
{
    shared *sh = ctx;
    wstate *st = state;
    uv_mutex_lock(&sh->mu);
    sh->finished++;
    sh->accepted[workers_index(w)] = st->accepted;
    sh->stops[workers_index(w)] = st->stops;
    sh->again[workers_index(w)] = st->again;
    uv_mutex_unlock(&sh->mu);
    free(st);
}

static void on_ready(workers *ws, void *ctx, const int *ports, int nports)
{
    shared *sh = ctx;
    assert_int_equal(nports, 1);
    uv_mutex_lock(&sh->mu);
    sh->ws = ws;
    sh->port = ports[0];
    sh->ready = 1;
    uv_cond_signal(&sh->cond);
    uv_mutex_unlock(&sh->mu);
}

static const workers_ops ops = {w_start, w_stop, w_finish};

typedef struct run {
    workers_config cfg;
    shared *sh;
    int rc;
} run;

static void runner(void *arg)
{
    run *r = arg;
    r->sh->runner = uv_thread_self();
    r->rc = workers_run(&r->cfg);
    uv_mutex_lock(&r->sh->mu);
    r->sh->ready = -1; /* also wakes a waiter when the run failed */
    uv_cond_signal(&r->sh->cond);
    uv_mutex_unlock(&r->sh->mu);
}

/* Starts a run of count workers on a thread; returns once it is ready (1)
 * or over (0). */
static int start_run(run *r, uv_thread_t *t, shared *sh, int count, int fail_index,
                     int signals)
{
    memset(sh, 0, sizeof *sh);
    sh->fail_index = fail_index;
    uv_mutex_init(&sh->mu);
    uv_cond_init(&sh->cond);
    r->sh = sh;
    r->cfg = (workers_config){.count = count, .ops = &ops, .ctx = sh, .prog = "test_workers",
                              .handle_signals = signals, .ready = on_ready};
    assert_int_equal(uv_thread_create(t, runner, r), 0);
    uv_mutex_lock(&sh->mu);
    while (sh->ready == 0)
        uv_cond_wait(&sh->cond, &sh->mu);
    int ready = sh->ready == 1;
    uv_mutex_unlock(&sh->mu);
    return ready;
}

static void end_run(uv_thread_t *t, shared *sh)
{
    assert_int_equal(uv_thread_join(t), 0);
    uv_cond_destroy(&sh->cond);
    uv_mutex_destroy(&sh->mu);
}

/* One connection to port: returns the byte (worker index) it was answered. */
static int connect_once(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char byte = -1;
    assert_int_equal(recv(fd, &byte, 1, MSG_WAITALL), 1);
    close(fd);
    return byte;
}

/* CONNS connections, each answered; returns how many each worker answered. */
static void serve_conns(int port, int count, int per_worker[])
{
    for (int i = 0; i < CONNS; i++) {
        int idx = connect_once(port);
        assert_in_range(idx, 0, count - 1);
        per_worker[idx]++;
    }
}

static void two_workers_share_the_port_and_stop_from_another_thread(void **state)
{
    (void)state;
    shared sh;
    run r;
    uv_thread_t t;
    assert_true(start_run(&r, &t, &sh, 2, -1, 0));
    int per_worker[2] = {0, 0};
    serve_conns(sh.port, 2, per_worker);
    workers_stop(sh.ws);
    end_run(&t, &sh);
    assert_int_equal(r.rc, 0);
    assert_int_equal(sh.finished, 2);
    /* The kernel's SO_REUSEPORT hash spread 64 connections over both. */
    assert_true(per_worker[0] > 0 && per_worker[1] > 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sh.accepted[i], per_worker[i]);
        assert_int_equal(sh.stops[i], 1);
        assert_int_equal(sh.again[i], 0);
    }
    assert_true(sh.on_runner[0]);  /* worker 0 on the calling thread */
    assert_false(sh.on_runner[1]); /* worker 1 on its own */
}

static void one_worker_runs_on_the_calling_thread(void **state)
{
    (void)state;
    shared sh;
    run r;
    uv_thread_t t;
    assert_true(start_run(&r, &t, &sh, 1, -1, 0));
    int per_worker[1] = {0};
    serve_conns(sh.port, 1, per_worker);
    workers_stop(sh.ws);
    workers_stop(sh.ws); /* again: still one listener close, counted as again */
    end_run(&t, &sh);
    assert_int_equal(r.rc, 0);
    assert_int_equal(sh.finished, 1);
    assert_int_equal(sh.accepted[0], CONNS);
    assert_true(sh.on_runner[0]);
    assert_true(sh.stops[0] >= 1);
    assert_int_equal(sh.again[0], sh.stops[0] - 1);
}

static void sigterm_stops_every_worker(void **state)
{
    (void)state;
    shared sh;
    run r;
    uv_thread_t t;
    assert_true(start_run(&r, &t, &sh, 3, -1, 1));
    int per_worker[3] = {0, 0, 0};
    serve_conns(sh.port, 3, per_worker);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    end_run(&t, &sh);
    assert_int_equal(r.rc, 0);
    assert_int_equal(sh.finished, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sh.stops[i], 1);
}

static void a_failed_start_stops_the_others(void **state)
{
    (void)state;
    for (int fail = 0; fail < 3; fail++) {
        shared sh;
        run r;
        uv_thread_t t;
        assert_false(start_run(&r, &t, &sh, 3, fail, 0));
        end_run(&t, &sh);
        assert_int_equal(r.rc, 1);
        assert_int_equal(sh.finished, fail == 0 ? 1 : 3); /* worker 0 failing starts no thread */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_workers_share_the_port_and_stop_from_another_thread),
        cmocka_unit_test(one_worker_runs_on_the_calling_thread),
        cmocka_unit_test(sigterm_stops_every_worker),
        cmocka_unit_test(a_failed_start_stops_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
