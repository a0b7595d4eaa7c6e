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
#include "line_parser.h"

typedef struct app {
    line_parser parser;
    example_tally stats; /* the consumer */
    size_t partial_tail;
    int failed;
    int finished;
    example_stream es;
} app;

static void reject_long_line(app *a)
{
    fprintf(stderr,
            "line_protocol: line %" PRIu64 " is longer than --max-line %zu bytes; rejected\n",
            a->stats.count + 1, a->parser.max_line);
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
            example_tally_take(&a->stats, &line); /* hands it off */
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
    app a;
    memset(&a, 0, sizeof a);
    example_tally_init(&a.stats);
    line_parser_init(&a.parser, (size_t)o.limit);
    /* One complete line and its '\n' always fit; nothing beyond is buffered. */
    if (example_stream_run(&a.es, "line_protocol", &o, (size_t)o.limit + 1, on_input, &a) != 0 ||
        a.failed || !a.finished)
        return 1;
    example_tally_print(&a.stats, "lines", a.partial_tail);
    return 0;
}
