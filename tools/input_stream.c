/* input_stream.c - standard input / one TCP connection as a bh_reader
 * stream, with a uv_fs_read() path for regular files, the consumer of the
 * slices and the command line of the line_protocol and length_prefix
 * examples (see input_stream.h). */
#include "input_stream.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fnv1a.h"

static void init(example_stream *es, uv_loop_t *loop, bh_buf *buf, size_t read_reserve,
                 example_stream_cb cb, void *ctx)
{
    memset(es, 0, sizeof *es);
    es->loop = loop;
    es->buf = buf;
    es->read_reserve = read_reserve ? read_reserve : BH_READ_RESERVE_DEFAULT;
    es->cb = cb;
    es->ctx = ctx;
}

static void on_reader(bh_reader *r, int status, void *ctx)
{
    example_stream *es = ctx;
    (void)r;
    es->cb(es, status, es->ctx);
}

static int start_stream(example_stream *es)
{
    int rc = bh_reader_init(&es->reader, &es->in.stream, es->buf, es->read_reserve, on_reader, es);
    if (rc == 0)
        rc = bh_reader_start(&es->reader);
    return rc;
}

/* ---- regular files: the same reserve / read / commit cycle by hand ---- */

static void file_read_next(example_stream *es);

static void on_file_read(uv_fs_t *req)
{
    example_stream *es = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (es->closed)
        return;
    if (n < 0) {
        es->cb(es, (int)n, es->ctx);
        return;
    }
    if (n == 0) {
        es->cb(es, UV_EOF, es->ctx);
        return;
    }
    bh_buf_commit(es->buf, (size_t)n); /* at most the spare offered below */
    es->cb(es, BH_OK, es->ctx);
    if (!es->closed)
        file_read_next(es);
}

static void file_read_next(example_stream *es)
{
    size_t room = bh_buf_max_len(es->buf) - bh_buf_len(es->buf);
    size_t want = es->read_reserve < room ? es->read_reserve : room;
    uint8_t *spare;
    size_t spare_len;
    if (want == 0) {
        es->cb(es, BH_ETOOLONG, es->ctx);
        return;
    }
    int rc = bh_buf_reserve(es->buf, want, &spare, &spare_len);
    if (rc != BH_OK) {
        es->cb(es, rc, es->ctx);
        return;
    }
    uv_buf_t ub = uv_buf_init((char *)spare, spare_len > UINT_MAX ? UINT_MAX : (unsigned)spare_len);
    es->fs.data = es;
    rc = uv_fs_read(es->loop, &es->fs, 0, &ub, 1, -1, on_file_read);
    if (rc != 0)
        es->cb(es, rc, es->ctx);
}

int example_stream_open_stdin(example_stream *es, uv_loop_t *loop, bh_buf *buf,
                              size_t read_reserve, example_stream_cb cb, void *ctx)
{
    int rc;
    init(es, loop, buf, read_reserve, cb, ctx);
    switch (uv_guess_handle(0)) {
    case UV_TTY:
        rc = uv_tty_init(loop, &es->in.tty, 0, 1);
        break;
    case UV_TCP:
        rc = uv_tcp_init(loop, &es->in.tcp);
        if (rc == 0) {
            es->in_open = 1;
            rc = uv_tcp_open(&es->in.tcp, 0);
        }
        break;
    case UV_NAMED_PIPE:
        rc = uv_pipe_init(loop, &es->in.pipe, 0);
        if (rc == 0) {
            es->in_open = 1;
            rc = uv_pipe_open(&es->in.pipe, 0);
        }
        break;
    case UV_FILE:
        es->is_file = 1;
        file_read_next(es);
        return 0;
    default:
        return UV_EINVAL;
    }
    if (rc == 0) {
        es->in_open = 1;
        rc = start_stream(es);
    }
    return rc;
}

/* ---- one accepted TCP connection ---- */

static void on_connection(uv_stream_t *listener, int status)
{
    example_stream *es = listener->data;
    if (status == 0)
        status = uv_tcp_init(es->loop, &es->in.tcp);
    if (status == 0) {
        es->in_open = 1;
        status = uv_accept(listener, &es->in.stream);
    }
    uv_close((uv_handle_t *)&es->listener, NULL);
    es->listening = 0;
    if (status == 0)
        status = start_stream(es);
    if (status != 0)
        es->cb(es, status, es->ctx);
}

int example_stream_listen(example_stream *es, uv_loop_t *loop, const char *hostport,
                          bh_buf *buf, size_t read_reserve, example_stream_cb cb, void *ctx)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    init(es, loop, buf, read_reserve, cb, ctx);
    int rc = cli_parse_addr(hostport, &addr);
    if (rc != 0)
        return rc;
    rc = uv_tcp_init(loop, &es->listener);
    if (rc != 0)
        return rc;
    es->listening = 1;
    es->listener.data = es;
    rc = uv_tcp_bind(&es->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&es->listener, 1, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&es->listener, (struct sockaddr *)&bound, &namelen);
    if (rc == 0) {
        printf("listening %d\n", cli_addr_port(&bound));
        fflush(stdout);
    }
    return rc;
}

void example_stream_close(example_stream *es)
{
    if (es->closed)
        return;
    es->closed = 1;
    if (es->in_open) {
        bh_reader_stop(&es->reader);
        uv_close(&es->in.handle, NULL);
        es->in_open = 0;
    }
    if (es->listening) {
        uv_close((uv_handle_t *)&es->listener, NULL);
        es->listening = 0;
    }
}

void example_tally_init(example_tally *t)
{
    memset(t, 0, sizeof *t);
    t->hash = FNV1A64_OFFSET;
}

void example_tally_take(example_tally *t, bh_bytes *slice)
{
    t->hash = fnv1a64(t->hash, slice->ptr, slice->len);
    t->count++;
    t->bytes += slice->len;
    bh_bytes_release(slice);
}

void example_tally_print(const example_tally *t, const char *unit, size_t partial_tail)
{
    printf("%s=%" PRIu64 " bytes=%" PRIu64 " fnv1a64=%016" PRIx64 " partial_tail=%zu\n", unit,
           t->count, t->bytes, t->hash, partial_tail);
}

int example_stream_run(example_stream *es, const char *prog, const example_options *o,
                       size_t max_len, example_stream_cb cb, void *ctx)
{
    uv_loop_t loop;
    bh_buf buf;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "%s: cannot initialise the loop\n", prog);
        return -1;
    }
    int rc = bh_buf_init(&buf, max_len);
    if (rc == BH_OK)
        rc = o->listen_at ? example_stream_listen(es, &loop, o->listen_at, &buf, o->read_reserve,
                                                  cb, ctx)
                          : example_stream_open_stdin(es, &loop, &buf, o->read_reserve, cb, ctx);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot open input: %s\n", prog, bh_strerror(rc));
        example_stream_close(es);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    bh_buf_free(&buf);
    return rc == 0 ? 0 : -1;
}

enum { OPT_LIMIT = 256, OPT_READ_RESERVE, OPT_TCP_LISTEN };

void example_parse_options(int argc, char **argv, const char *limit_name, uint64_t limit_min,
                           uint64_t limit_max, void (*usage)(FILE *), example_options *o)
{
    const struct option long_options[] = {
        {limit_name, required_argument, NULL, OPT_LIMIT},
        {"read-reserve", required_argument, NULL, OPT_READ_RESERVE},
        {"tcp-listen", required_argument, NULL, OPT_TCP_LISTEN},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    char limit_opt[32];
    snprintf(limit_opt, sizeof limit_opt, "--%s", limit_name);
    cli_init(argv[0]);
    int c;
    while ((c = cli_next_option(argc, argv, long_options, usage)) != -1) {
        switch (c) {
        case OPT_LIMIT:
            o->limit = cli_size(limit_opt, optarg, limit_min, limit_max);
            break;
        case OPT_READ_RESERVE:
            o->read_reserve = (size_t)cli_size("--read-reserve", optarg, 1, CLI_GIB);
            break;
        case OPT_TCP_LISTEN: {
            struct sockaddr_storage unused;
            cli_addr("--tcp-listen", optarg, &unused);
            o->listen_at = optarg;
            break;
        }
        }
    }
}
