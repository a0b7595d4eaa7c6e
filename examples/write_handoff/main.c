/* main.c - write_handoff: handing owned slices to a bounded write queue.
 *
 * One process, one loop: a receiver listens on 127.0.0.1 (ephemeral port), a
 * producer connects and pushes --items owned slices (bh_bytes_copy) through a
 * bh_writeq with small budgets. Every --ticket-every'th slice carries a
 * completion ticket; the rest are fire-and-forget. When the queue refuses a
 * slice with BH_EFULL the producer keeps it (a refusal never takes
 * ownership) and waits: the drain callback
 * fires once queued bytes fall to the low-water mark, and production resumes
 * with the slice that was refused. After the last slice the producer calls
 * bh_writeq_shutdown(), so the receiver sees EOF after the last byte.
 *
 * The receiver hashes everything it reads (FNV-1a 64) and compares count and
 * hash with what the producer handed over, in order. The program prints one
 * summary line and exits 0 only if every byte arrived in order, every ticket
 * completed with status 0 and the shutdown succeeded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "cli.h"
#include "fnv1a.h"

typedef struct options {
    uint64_t items;
    size_t max_items, max_bytes, low_water, max_slice;
    uint64_t ticket_every;
    int sndbuf;
} options;

typedef struct app {
    options opt;
    uv_loop_t *loop;
    uv_tcp_t listener, producer_tcp, receiver_tcp;
    uv_connect_t connect_req;
    int listener_open, receiver_open;
    bh_writeq q;

    /* producer side */
    uint64_t made;        /* slices accepted by the queue */
    bh_bytes pending;     /* a refused slice, still ours */
    int has_pending;
    uint64_t sent_bytes;
    uint64_t sent_hash;
    uint64_t tickets, tickets_ok, tickets_failed;
    uint64_t refusals_efull, drains;
    int shutdown_status, shutdown_done;
    int producer_done;

    /* receiver side */
    uint64_t recv_bytes;
    uint64_t recv_hash;
    int recv_eof, recv_error;
    char rbuf[64 * 1024];

    int failed;
} app;


/* ---- receiver ------------------------------------------------------------- */

static void close_all(app *a);

static void recv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    app *a = h->data;
    buf->base = a->rbuf;
    buf->len = sizeof a->rbuf;
}

static void recv_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    app *a = s->data;
    if (nread > 0) {
        a->recv_hash = fnv1a64(a->recv_hash, (const uint8_t *)buf->base, (size_t)nread);
        a->recv_bytes += (uint64_t)nread;
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF)
        a->recv_eof = 1;
    else
        a->recv_error = (int)nread;
    close_all(a);
}

static void on_connection(uv_stream_t *listener, int status)
{
    app *a = listener->data;
    if (status < 0 || a->receiver_open) {
        fprintf(stderr, "write_handoff: accept: %s\n", bh_strerror(status));
        a->failed = 1;
        close_all(a);
        return;
    }
    uv_tcp_init(a->loop, &a->receiver_tcp);
    a->receiver_open = 1;
    a->receiver_tcp.data = a;
    int rc = uv_accept(listener, (uv_stream_t *)&a->receiver_tcp);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&a->receiver_tcp, recv_alloc, recv_read);
    if (rc != 0) {
        fprintf(stderr, "write_handoff: receiver: %s\n", bh_strerror(rc));
        a->failed = 1;
        close_all(a);
        return;
    }
    uv_close((uv_handle_t *)&a->listener, NULL);
    a->listener_open = 0;
}

/* ---- producer ------------------------------------------------------------- */

/* Slice i: a short text header and a body whose length and bytes depend on
 * i, so reordering or loss changes the hash. */
static int make_slice(app *a, uint64_t i, bh_bytes *out)
{
    uint8_t body[256 + 64 * 1024];
    size_t len = 1 + (size_t)((i * 2654435761u) % a->opt.max_slice);
    int hdr = snprintf((char *)body, 64, "#%" PRIu64 ":", i);
    for (size_t k = (size_t)hdr; k < len + (size_t)hdr; k++)
        body[k] = (uint8_t)('a' + (k + i) % 26);
    return bh_bytes_copy(out, body, len + (size_t)hdr);
}

static void on_ticket(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    app *a = ctx;
    if (status == 0) {
        a->tickets_ok++;
    } else {
        a->tickets_failed++;
        fprintf(stderr, "write_handoff: ticket failed: %s\n", bh_strerror(status));
    }
}

static void on_shutdown(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    app *a = ctx;
    a->shutdown_done = 1;
    a->shutdown_status = status;
    if (status != 0)
        fprintf(stderr, "write_handoff: shutdown: %s\n", bh_strerror(status));
}

/* Produces until done or refused. A refused slice stays in a->pending (we
 * still own it) and is offered again from the drain callback. */
static void produce(app *a)
{
    while (a->made < a->opt.items) {
        if (!a->has_pending) {
            if (make_slice(a, a->made, &a->pending) != BH_OK) {
                fprintf(stderr, "write_handoff: out of memory\n");
                a->failed = 1;
                close_all(a);
                return;
            }
            a->has_pending = 1;
        }
        /* Hash before handing over: once accepted, the slice belongs to the
         * queue and may be released at once (fast path). */
        size_t n = a->pending.len;
        uint64_t h = fnv1a64(a->sent_hash, a->pending.ptr, n);
        int ticket = a->opt.ticket_every && a->made % a->opt.ticket_every == 0;
        int rc = ticket ? bh_writeq_try_write(&a->q, &a->pending, on_ticket, a)
                        : bh_writeq_try_write_ff(&a->q, &a->pending);
        if (rc == BH_EFULL) {
            a->refusals_efull++;
            return; /* a->pending is still ours; the drain callback resumes */
        }
        if (rc != BH_OK) {
            fprintf(stderr, "write_handoff: write refused: %s\n", bh_strerror(rc));
            bh_bytes_release(&a->pending);
            a->has_pending = 0;
            a->failed = 1;
            close_all(a);
            return;
        }
        /* Accepted: the queue owns the slice now (a->pending was zeroed). */
        a->sent_hash = h;
        a->sent_bytes += n;
        a->has_pending = 0;
        a->made++;
        if (ticket)
            a->tickets++;
    }
    if (!a->producer_done) {
        a->producer_done = 1;
        int rc = bh_writeq_shutdown(&a->q, on_shutdown, a);
        if (rc != BH_OK) {
            fprintf(stderr, "write_handoff: shutdown: %s\n", bh_strerror(rc));
            a->failed = 1;
            close_all(a);
        }
    }
}

static void on_drain(bh_writeq *q, void *ctx)
{
    (void)q;
    app *a = ctx;
    a->drains++;
    produce(a);
}

static void on_connect(uv_connect_t *req, int status)
{
    app *a = req->data;
    if (status < 0) {
        fprintf(stderr, "write_handoff: connect: %s\n", bh_strerror(status));
        a->failed = 1;
        close_all(a);
        return;
    }
    if (a->opt.sndbuf > 0) {
        int v = a->opt.sndbuf;
        uv_send_buffer_size((uv_handle_t *)&a->producer_tcp, &v);
    }
    produce(a);
}

/* ---- setup and teardown --------------------------------------------------- */

static void close_all(app *a)
{
    if (a->has_pending) {
        bh_bytes_release(&a->pending);
        a->has_pending = 0;
    }
    bh_writeq_close(&a->q);
    if (!uv_is_closing((uv_handle_t *)&a->producer_tcp))
        uv_close((uv_handle_t *)&a->producer_tcp, NULL);
    if (a->receiver_open && !uv_is_closing((uv_handle_t *)&a->receiver_tcp))
        uv_close((uv_handle_t *)&a->receiver_tcp, NULL);
    if (a->listener_open) {
        uv_close((uv_handle_t *)&a->listener, NULL);
        a->listener_open = 0;
    }
}

static int start(app *a)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    int rc = uv_tcp_init(a->loop, &a->listener);
    if (rc != 0)
        return rc;
    a->listener_open = 1;
    a->listener.data = a;
    rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 1, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &namelen);
    if (rc == 0)
        rc = uv_tcp_init(a->loop, &a->producer_tcp);
    if (rc != 0)
        return rc;
    bh_writeq_config cfg = {a->opt.max_items, a->opt.max_bytes};
    rc = bh_writeq_init(&a->q, a->loop, (uv_stream_t *)&a->producer_tcp, &cfg);
    if (rc != 0)
        return rc;
    bh_writeq_set_drain_cb(&a->q, a->opt.low_water, on_drain, a);
    a->connect_req.data = a;
    return uv_tcp_connect(&a->connect_req, &a->producer_tcp, (const struct sockaddr *)&bound,
                          on_connect);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: write_handoff [--items N] [--max-items N] [--max-bytes N] [--low-water N]\n"
            "                     [--max-slice N] [--ticket-every N] [--sndbuf N] [--version]\n"
            "\n"
            "Pushes N owned slices (tickets and fire-and-forget) through a bounded\n"
            "bh_writeq to a TCP receiver on 127.0.0.1 in the same process, retrying\n"
            "refused slices from the drain callback, then shuts the stream down.\n"
            "Prints one summary line; exits 0 only if the receiver got every byte in\n"
            "order and every ticket completed.\n"
            "\n"
            "  --items N         slices to send (default 20000)\n"
            "  --max-items N     queue item budget (default 64)\n"
            "  --max-bytes N     queue byte budget (default 65536)\n"
            "  --low-water N     drain callback mark in bytes (default max-bytes / 4)\n"
            "  --max-slice N     largest slice body, 1..65536 (default 3000)\n"
            "  --ticket-every N  every Nth slice carries a ticket, 0 = none (default 8)\n"
            "  --sndbuf N        producer socket send buffer, 0 = system default\n"
            "                    (default 16384, small to show backpressure)\n"
            "  --help            this text\n"
            "  --version         the program and library version\n"
            "Counts and sizes take K, M or G (x1024).\n");
}

enum { OPT_ITEMS = 256, OPT_MAX_ITEMS, OPT_MAX_BYTES, OPT_LOW_WATER, OPT_MAX_SLICE,
       OPT_TICKET_EVERY, OPT_SNDBUF };

static const struct option long_options[] = {
    {"items", required_argument, NULL, OPT_ITEMS},
    {"max-items", required_argument, NULL, OPT_MAX_ITEMS},
    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
    {"low-water", required_argument, NULL, OPT_LOW_WATER},
    {"max-slice", required_argument, NULL, OPT_MAX_SLICE},
    {"ticket-every", required_argument, NULL, OPT_TICKET_EVERY},
    {"sndbuf", required_argument, NULL, OPT_SNDBUF},
    CLI_STANDARD_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* Fills *o from the command line; exits on --help, --version or a bad
 * option. */
static void parse_options(options *o, int argc, char **argv)
{
    int c;
    while ((c = cli_next_option(argc, argv, long_options, usage)) != -1) {
        switch (c) {
        case OPT_ITEMS:
            o->items = cli_size("--items", optarg, 0, UINT64_C(1) << 32);
            break;
        case OPT_MAX_ITEMS:
            o->max_items = (size_t)cli_size("--max-items", optarg, 1, UINT64_C(1) << 32);
            break;
        case OPT_MAX_BYTES:
            o->max_bytes = (size_t)cli_size("--max-bytes", optarg, 1, CLI_GIB);
            break;
        case OPT_LOW_WATER:
            o->low_water = (size_t)cli_size("--low-water", optarg, 0, CLI_GIB);
            break;
        case OPT_MAX_SLICE:
            o->max_slice = (size_t)cli_size("--max-slice", optarg, 1, 64 * CLI_KIB);
            break;
        case OPT_TICKET_EVERY:
            o->ticket_every = cli_size("--ticket-every", optarg, 0, UINT32_MAX);
            break;
        case OPT_SNDBUF:
            o->sndbuf = (int)cli_size("--sndbuf", optarg, 0, CLI_GIB);
            break;
        }
    }
}

int main(int argc, char **argv)
{
    options o = {.items = 20000, .max_items = 64, .max_bytes = 64 * 1024,
                 .low_water = (size_t)-1, .max_slice = 3000, .ticket_every = 8,
                 .sndbuf = 16384};
    cli_init(argv[0]);
    parse_options(&o, argc, argv);
    app *a = calloc(1, sizeof *a);
    if (!a)
        return 2;
    a->opt = o;
    if (a->opt.low_water == (size_t)-1)
        a->opt.low_water = a->opt.max_bytes / 4;
    if (a->opt.max_slice + 32 > a->opt.max_bytes) {
        free(a);
        cli_die("--max-slice must leave room in --max-bytes");
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        free(a);
        return 2;
    }
    a->loop = &loop;
    a->sent_hash = a->recv_hash = FNV1A64_OFFSET;
    int rc = start(a);
    if (rc != 0) {
        fprintf(stderr, "write_handoff: setup: %s\n", bh_strerror(rc));
        a->failed = 1;
        close_all(a);
    }
    uv_run(&loop, UV_RUN_DEFAULT);

    struct bh_writeq_stats s;
    bh_writeq_stats(&a->q, &s);
    int match = a->recv_bytes == a->sent_bytes && a->recv_hash == a->sent_hash;
    int ok = !a->failed && match && a->recv_eof && a->made == a->opt.items &&
             a->tickets_ok == a->tickets && a->tickets_failed == 0 && a->shutdown_done &&
             a->shutdown_status == 0;
    printf("write_handoff: items=%" PRIu64 " bytes=%" PRIu64 " tickets_ok=%" PRIu64 "/%" PRIu64
           " refusals_efull=%" PRIu64 " drains=%" PRIu64 " batches=%" PRIu64
           " try_write_hits=%" PRIu64 " checksum=%s\n",
           a->made, a->recv_bytes, a->tickets_ok, a->tickets, a->refusals_efull, a->drains,
           s.batches, s.try_write_hits, match ? "match" : "MISMATCH");
    int lc = uv_loop_close(&loop);
    free(a);
    return ok && lc == 0 ? 0 : 1;
}
