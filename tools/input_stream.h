/* input_stream.h - plumbing shared by the line_protocol and length_prefix
 * examples: the input stream, the consumer of their slices and argument
 * parsing.
 *
 * example_stream opens the program's input as a libuv stream read through a bh_reader:
 * standard input when it is a pipe, socket or TTY, or one connection accepted
 * on a TCP address. A regular file (or character device) on standard input
 * cannot be polled, so it is read with uv_fs_read() into the same bh_buf,
 * and the callback sees the same statuses as with a bh_reader (BH_OK after
 * bytes were appended, UV_EOF once, BH_ETOOLONG when the buffer is full,
 * BH_ENOMEM, or a libuv error). Everything runs on one loop thread. */
#ifndef BH_INPUT_STREAM_H
#define BH_INPUT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

typedef struct example_stream example_stream;

/* Called with the statuses of bh_read_cb; es->buf holds the bytes. Every
 * status but BH_OK is final. The callback may call example_stream_close(). */
typedef void (*example_stream_cb)(example_stream *es, int status, void *ctx);

struct example_stream {
    uv_loop_t *loop;
    bh_buf *buf;
    size_t read_reserve;
    example_stream_cb cb;
    void *ctx;
    bh_reader reader;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tty_t tty;
        uv_tcp_t tcp;
    } in;
    uv_tcp_t listener;
    uv_fs_t fs;
    int in_open;   /* in.handle was initialised and is not closed */
    int listening; /* listener was initialised and is not closed */
    int is_file;   /* standard input is read with uv_fs_read() */
    int closed;    /* example_stream_close() was called */
};

/* Reads standard input into buf, calling cb as data arrives. Returns 0 or a
 * libuv error. */
int example_stream_open_stdin(example_stream *es, uv_loop_t *loop, bh_buf *buf,
                              size_t read_reserve, example_stream_cb cb, void *ctx);

/* Listens on "IPV4:PORT" or "[IPV6]:PORT" (port 0 picks a free one), prints "listening PORT"
 * on stdout (flushed), accepts one connection, stops listening and reads that
 * connection into buf. Returns 0 or a libuv error (UV_EINVAL for a bad
 * address). */
int example_stream_listen(example_stream *es, uv_loop_t *loop, const char *hostport,
                          bh_buf *buf, size_t read_reserve, example_stream_cb cb, void *ctx);

/* Stops reading and closes every handle; no callback follows. Idempotent. */
void example_stream_close(example_stream *es);

typedef struct example_options example_options;

/* The examples' consumer of owned slices: counts them and their bytes and
 * hashes them in arrival order (FNV-1a 64). */
typedef struct example_tally {
    uint64_t count;
    uint64_t bytes;
    uint64_t hash;
} example_tally;

void example_tally_init(example_tally *t);

/* Takes ownership of *slice: counts and hashes it, then releases it. */
void example_tally_take(example_tally *t, bh_bytes *slice);

/* Prints the summary line "UNIT=N bytes=M fnv1a64=HASH partial_tail=K". */
void example_tally_print(const example_tally *t, const char *unit, size_t partial_tail);

/* Reads one whole input on a loop of its own: standard input, or the one
 * connection accepted on o->listen_at, into a bh_buf of at most max_len
 * bytes, calling cb(es, status, ctx) as data arrives, until cb has closed
 * es or the input failed. Returns 0, or -1 after printing "prog: ..." on
 * stderr when the input could not be opened. */
int example_stream_run(example_stream *es, const char *prog, const example_options *o,
                       size_t max_len, example_stream_cb cb, void *ctx);

/* The command line both examples take. */
struct example_options {
    uint64_t limit;         /* --max-line or --max-frame */
    size_t read_reserve;    /* --read-reserve */
    const char *listen_at;  /* --tcp-listen ADDR, or NULL for standard input */
};

/* Parses [--LIMIT N] [--read-reserve N] [--tcp-listen ADDR] [--help]
 * [--version] with getopt_long(), where LIMIT is limit_name (e.g.
 * "max-line") taking a size in [limit_min, limit_max]. o holds the defaults
 * on entry. Exits 0 after --help (usage(stdout)) or --version, 2 on a bad
 * option. */
void example_parse_options(int argc, char **argv, const char *limit_name, uint64_t limit_min,
                           uint64_t limit_max, void (*usage)(FILE *), example_options *o);

#endif
