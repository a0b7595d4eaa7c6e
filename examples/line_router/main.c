/* main.c - line_router: the line-routing proxy of the guide's walk-through
 * (docs/guide.md, "Walk-through"), shown there in four parts. Accepts
 * clients on 127.0.0.1:7000 (--port); each '\n'-terminated line whose first
 * word is "alpha" or "beta" goes, whole and uncopied, to that route's
 * upstream on 127.0.0.1:7001 or :7002 (--alpha-port, --beta-port); other
 * lines are dropped. A full route queue pauses the clients waiting for it.
 * tests/e2e/line_router checks that the guide shows this file's code. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#define MAX_LINE 4096 /* longest accepted line, '\n' included */

typedef struct client client;

typedef struct route {
    const char *name;  /* first word of the lines routed here */
    int port;          /* upstream on 127.0.0.1 */
    uv_tcp_t tcp;
    uv_connect_t connect;
    bh_writeq q;       /* owns the lines until the upstream has them */
    client *paused;    /* clients waiting for q to drain */
} route;

struct client {
    uv_tcp_t tcp;      /* first member: the handle leads to the client */
    bh_buf in;         /* bytes read, lines not yet routed */
    bh_reader reader;
    bh_bytes held;     /* a line its route refused, still ours */
    route *held_route;
    client *next_paused;
};

static route routes[] = {{.name = "alpha", .port = 7001}, {.name = "beta", .port = 7002}};
#define NROUTES (sizeof routes / sizeof routes[0])

static route *route_for(const bh_bytes *line)
{
    for (size_t i = 0; i < NROUTES; i++) {
        size_t n = strlen(routes[i].name);
        if (line->len > n && memcmp(line->ptr, routes[i].name, n) == 0 && line->ptr[n] == ' ')
            return &routes[i];
    }
    return NULL;
}

/* Takes the line. Returns BH_EFULL when the client must wait for its route. */
static int forward(client *c, bh_bytes *line)
{
    route *r = route_for(line);
    int rc = r ? bh_writeq_try_write_ff(&r->q, line) : BH_EINVAL;
    if (rc == BH_EFULL) {
        c->held = *line;            /* refused: keep it for the retry */
        *line = (bh_bytes){0};
        c->held_route = r;
        c->next_paused = r->paused;
        r->paused = c;
        bh_reader_stop(&c->reader);
        return rc;
    }
    bh_bytes_release(line);        /* no-op when the queue took it (zeroed) */
    return BH_OK;                  /* routed, or dropped (unknown or closed route) */
}

/* Routes the held line and every complete buffered line, then reads on. */
static void pump(client *c)
{
    if (c->held.len > 0) {
        bh_bytes line = c->held;
        c->held = (bh_bytes){0};
        if (forward(c, &line) == BH_EFULL)
            return;
    }
    size_t nl;
    while ((nl = bh_buf_find(&c->in, '\n', 0)) != BH_NPOS) {
        bh_bytes line;
        bh_buf_split_prefix(&c->in, nl + 1, &line); /* the line, no copy */
        if (forward(c, &line) == BH_EFULL)
            return;
    }
    bh_reader_start(&c->reader);
}

/* A route drained: every client waiting for it tries again. */
static void on_drain(bh_writeq *q, void *ctx)
{
    route *r = ctx;
    client *waiting = r->paused;
    (void)q;
    r->paused = NULL;
    while (waiting) {
        client *c = waiting;
        waiting = c->next_paused;
        c->next_paused = NULL;
        pump(c);
    }
}

static void on_client_closed(uv_handle_t *h)
{
    client *c = (client *)(void *)h; /* tcp is the first member */
    bh_bytes_release(&c->held);
    bh_buf_free(&c->in);
    free(c);
}

static void client_close(client *c)
{
    if (c->held.len > 0) {
        client **p = &c->held_route->paused;
        while (*p && *p != c)
            p = &(*p)->next_paused;
        if (*p)
            *p = c->next_paused;
    }
    bh_reader_stop(&c->reader);
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_client_read(bh_reader *r, int status, void *ctx)
{
    (void)r;
    if (status != BH_OK) {
        /* UV_EOF, BH_ETOOLONG (a line above MAX_LINE), or an error */
        client_close(ctx);
        return;
    }
    pump(ctx);
}

static void on_connection(uv_stream_t *server, int status)
{
    client *c = status == 0 ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    bh_buf_init(&c->in, MAX_LINE);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        bh_reader_init(&c->reader, (uv_stream_t *)&c->tcp, &c->in, 0, on_client_read, c) != 0 ||
        bh_reader_start(&c->reader) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_route_connected(uv_connect_t *req, int status)
{
    route *r = req->data;
    if (status != 0) {
        fprintf(stderr, "route %s: %s\n", r->name, uv_strerror(status));
        bh_writeq_close(&r->q);   /* its lines are dropped from now on */
    }
}

/* A TCP port from the command line, or exit 2. */
static int port_arg(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 65535) {
        fprintf(stderr, "line_router: '%s' is not a port\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"port", required_argument, NULL, 'p'},       {"alpha-port", required_argument, NULL, 'a'},
        {"beta-port", required_argument, NULL, 'b'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0}};
    int port = 7000, c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'p': port = port_arg(optarg); break;
        case 'a': routes[0].port = port_arg(optarg); break;
        case 'b': routes[1].port = port_arg(optarg); break;
        case 'V': printf("line_router (libbytes_handoff) %s\n", bh_version_string()); return 0;
        case 'h':
            printf("Usage: line_router [--port N] [--alpha-port N] [--beta-port N]\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "line_router: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    uv_loop_t *loop = uv_default_loop();
    bh_writeq_config cfg = bh_writeq_config_default();
    cfg.max_bytes = 64 * 1024;
    for (size_t i = 0; i < NROUTES; i++) {
        route *r = &routes[i];
        struct sockaddr_in addr;
        uv_ip4_addr("127.0.0.1", r->port, &addr);
        uv_tcp_init(loop, &r->tcp);
        bh_writeq_init(&r->q, loop, (uv_stream_t *)&r->tcp, &cfg);
        bh_writeq_set_drain_cb(&r->q, cfg.max_bytes / 2, on_drain, r);
        r->connect.data = r;
        uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&addr,
                       on_route_connected);
    }
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 128, on_connection);
    if (rc != 0) {
        fprintf(stderr, "listen: %s\n", uv_strerror(rc));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
