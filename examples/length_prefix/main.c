/* main.c - length_prefix: length-prefixed frames over a real stream.
 *
 * Frames are a u32 big-endian payload length followed by the payload; the
 * header may arrive long before the payload. Input is standard input (or one
 * TCP connection with --tcp-listen), read through a bh_reader into a
 * persistent bh_buf. The declared length is checked against --max-frame as
 * soon as the header is complete: a larger frame is rejected (stderr, exit
 * status 1) before any memory is reserved for it. An accepted frame's
 * remaining bytes are reserved at once, so its payload lands in one block and
 * is split off as an owned bh_bytes (no copy) for the consumer, which counts
 * and hashes payloads (FNV-1a 64). At end of input it prints:
 *   frames=N bytes=M fnv1a64=XXXXXXXXXXXXXXXX partial_tail=K
 * where bytes and the hash cover the payloads (headers excluded) and K is the
 * number of bytes of an incomplete last frame. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "input_stream.h"
#include "frame_parser.h"

typedef struct app {
    frame_parser parser;
    example_tally stats; /* the consumer */
    size_t partial_tail;
    int failed;
    int finished;
    example_stream es;
} app;

static void stop_with_error(app *a)
{
    a->failed = 1;
    example_stream_close(&a->es);
}

/* Splits every complete frame off the buffer. Returns 0, or -1 after
 * reporting a rejected frame. */
static int drain_frames(app *a, bh_buf *buf)
{
    bh_bytes payload;
    size_t need = 0;
    uint32_t declared = 0;
    frame_parse_status ps;
    while ((ps = frame_parser_next(&a->parser, buf, &payload, &need, &declared)) ==
           FRAME_PARSE_FRAME)
        example_tally_take(&a->stats, &payload); /* hands it off */
    if (ps == FRAME_PARSE_TOO_LONG) {
        fprintf(stderr,
                "length_prefix: frame %" PRIu64 " declares %" PRIu32
                " bytes, above --max-frame %" PRIu32 "; rejected before reading it\n",
                a->stats.count + 1, declared, a->parser.max_frame);
        return -1;
    }
    /* The header is complete and within the limit: make room for the rest of
     * the frame now, so the reads that follow fill one block. */
    if (bh_buf_len(buf) >= FRAME_HEADER_LEN) {
        int rc = bh_buf_reserve(buf, need, NULL, NULL);
        if (rc != BH_OK) {
            fprintf(stderr, "length_prefix: cannot buffer frame %" PRIu64 ": %s\n",
                    a->stats.count + 1, bh_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static void on_input(example_stream *es, int status, void *ctx)
{
    app *a = ctx;
    if (status == BH_OK || status == UV_EOF) {
        if (drain_frames(a, es->buf) != 0) {
            stop_with_error(a);
            return;
        }
        if (status == UV_EOF) {
            a->partial_tail = bh_buf_len(es->buf);
            a->finished = 1;
            example_stream_close(es);
        }
        return;
    }
    fprintf(stderr, "length_prefix: read failed: %s (%s)\n", bh_strerror(status),
            bh_err_name(status));
    stop_with_error(a);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: length_prefix [--max-frame N] [--read-reserve N] [--tcp-listen ADDR]\n"
            "Reads frames (u32 big-endian payload length, then the payload) from standard\n"
            "input (or from one TCP connection accepted on ADDR; port 0 picks one,\n"
            "announced as \"listening PORT\"), hands each payload off as an owned slice,\n"
            "and prints\n"
            "  frames=N bytes=M fnv1a64=HASH partial_tail=K\n"
            "  --max-frame N     longest accepted payload in bytes (default 1048576, at most\n"
            "                    4294967295); a longer declared length is an error (exit\n"
            "                    status 1), detected before anything is reserved for it\n"
            "  --read-reserve N  spare bytes offered to each read (default 16384)\n"
            "  --help            show this text\n"
            "  --version         the program and library version\n"
            "Sizes take K, M or G (x1024); ADDR is IPV4:PORT or [IPV6]:PORT.\n");
}

int main(int argc, char **argv)
{
    example_options o = {1048576, BH_READ_RESERVE_DEFAULT, NULL};
    example_parse_options(argc, argv, "max-frame", 0, UINT32_MAX, usage, &o);
    app a;
    memset(&a, 0, sizeof a);
    example_tally_init(&a.stats);
    frame_parser_init(&a.parser, (uint32_t)o.limit);
    /* The largest accepted frame fits with its header; nothing beyond. */
    size_t max_len = frame_parser_max_wire(&a.parser);
    if (example_stream_run(&a.es, "length_prefix", &o, max_len, on_input, &a) != 0 ||
        a.failed || !a.finished)
        return 1;
    example_tally_print(&a.stats, "frames", a.partial_tail);
    return 0;
}
