/* main.c - line_protocol: incremental line parsing over a real stream.
 *
 * Reads standard input (or one TCP connection with --tcp-listen) through a
 * bh_reader into a persistent bh_buf. Every complete '\n'-terminated line is
 * split off as an owned bh_bytes (no copy) and handed to a consumer that
 * counts lines and bytes and hashes them (FNV-1a 64); the partial tail stays
 * in the buffer across reads. A line longer than --max-line is rejected with
 * a message on stderr and exit status 1, without buffering past the limit.
 * At end of input it prints:
 *   lines=N bytes=M fnv1a64=XXXXXXXXXXXXXXXX partial_tail=K
 * where bytes and the hash cover the complete lines, terminators included,
 * and K is the length of the unterminated tail. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "cli.h"
#include "input_stream.h"
#include "fnv1a.h"
#include "line_parser.h"

typedef struct line_stats {
    uint64_t lines;
    uint64_t bytes;
    uint64_t hash;
} line_stats;

typedef struct app {
    line_parser parser;
    line_stats stats;
    size_t partial_tail;
    int failed;
    int finished;
    example_stream es;
} app;

/* The consumer: takes ownership of one line and releases it when done. */
static void consume_line(line_stats *st, bh_bytes *line)
{
    st->hash = fnv1a64(st->hash, line->ptr, line->len);
    st->lines++;
    st->bytes += line->len;
    bh_bytes_release(line);
}

static void reject_long_line(app *a)
{
    fprintf(stderr,
            "line_protocol: line %" PRIu64 " is longer than --max-line %zu bytes; rejected\n",
            a->stats.lines + 1, a->parser.max_line);
    a->failed = 1;
    example_stream_close(&a->es);
}

static void on_input(example_stream *es, int status, void *ctx)
{
    app *a = ctx;
    if (status == BH_OK || status == UV_EOF) {
        bh_bytes line;
        line_parse_status ps;
        while ((ps = line_parser_next(&a->parser, es->buf, &line)) == LINE_PARSE_LINE)
            consume_line(&a->stats, &line);
        if (ps == LINE_PARSE_TOO_LONG) {
            reject_long_line(a);
            return;
        }
        if (status == UV_EOF) {
            a->partial_tail = bh_buf_len(es->buf);
            a->finished = 1;
            example_stream_close(es);
        }
        return;
    }
    if (status == BH_ETOOLONG) {
        reject_long_line(a);
        return;
    }
    fprintf(stderr, "line_protocol: read failed: %s (%s)\n", bh_strerror(status),
            bh_err_name(status));
    a->failed = 1;
    example_stream_close(es);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: line_protocol [--max-line N] [--read-reserve N] [--tcp-listen ADDR]\n"
            "Reads '\\n'-terminated lines from standard input (or from one TCP connection\n"
            "accepted on ADDR; port 0 picks one, announced as \"listening PORT\"),\n"
            "hands each complete line off as an owned slice, and prints\n"
            "  lines=N bytes=M fnv1a64=HASH partial_tail=K\n"
            "  --max-line N      longest accepted line, '\\n' excluded (default 65536);\n"
            "                    a longer line is an error (exit status 1)\n"
            "  --read-reserve N  spare bytes offered to each read (default 16384)\n"
            "  --help            show this text\n"
            "  --version         the program and library version\n"
            "Sizes take K, M or G (x1024); ADDR is IPV4:PORT or [IPV6]:PORT.\n");
}

int main(int argc, char **argv)
{
    example_options o = {65536, BH_READ_RESERVE_DEFAULT, NULL};
    example_parse_options(argc, argv, "max-line", 1, CLI_GIB, usage, &o);
    uint64_t max_line = o.limit;
    size_t read_reserve = o.read_reserve;
    const char *listen_at = o.listen_at;

    uv_loop_t loop;
    bh_buf buf;
    app a;
    memset(&a, 0, sizeof a);
    a.stats.hash = FNV1A64_OFFSET;
    line_parser_init(&a.parser, (size_t)max_line);
    /* One complete line and its '\n' always fit; nothing beyond is buffered. */
    if (uv_loop_init(&loop) != 0 || bh_buf_init(&buf, (size_t)max_line + 1) != BH_OK) {
        fprintf(stderr, "line_protocol: initialisation failed\n");
        return 1;
    }
    int rc = listen_at
                 ? example_stream_listen(&a.es, &loop, listen_at, &buf, (size_t)read_reserve,
                                         on_input, &a)
                 : example_stream_open_stdin(&a.es, &loop, &buf, (size_t)read_reserve, on_input,
                                             &a);
    if (rc != 0) {
        fprintf(stderr, "line_protocol: cannot open input: %s\n", bh_strerror(rc));
        a.failed = 1;
        example_stream_close(&a.es);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    bh_buf_free(&buf);
    if (a.failed || !a.finished)
        return 1;
    printf("lines=%" PRIu64 " bytes=%" PRIu64 " fnv1a64=%016" PRIx64 " partial_tail=%zu\n",
           a.stats.lines, a.stats.bytes, a.stats.hash, a.partial_tail);
    return 0;
}
