/* reader_fixture.h - helpers shared by test_reader.c and test_reader_tcp.c.
 *
 * feeder: writes a byte string into a stream from the loop in chosen
 * fragments (1 byte, seeded random sizes, or all at once). In lockstep mode it
 * issues the next fragment only once the reader has seen every byte sent so
 * far, so each read sees exactly one fragment.
 * collector: a bh_reader callback that splits complete lines off the buffer
 * (keeping them as slices or releasing them at once), records every byte it
 * took in a transcript, counts statuses, and runs a per-test hook. */
#ifndef BH_READER_FIXTURE_H
#define BH_READER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

typedef enum feed_mode { FEED_ONE_BYTE, FEED_RANDOM, FEED_ALL } feed_mode;

typedef struct feeder feeder;
struct feeder {
    uv_stream_t *out;
    const uint8_t *data;
    size_t len;
    feed_mode mode;
    uint64_t rng;
    size_t max_chunk; /* FEED_RANDOM: fragment sizes are 1..max_chunk */
    int lockstep;     /* wait for the reader before each fragment */
    int shutdown;     /* uv_shutdown() after the last byte: EOF for the reader */
    size_t sent;      /* bytes handed to uv_write() */
    size_t writes;    /* uv_write() calls */
    int in_flight;
    int write_error;  /* first failed write's status */
    int done;         /* everything written (and shut down if asked) */
    void (*on_done)(feeder *f);
    void *data_ctx;
    uv_write_t wreq;
    uv_shutdown_t sreq;
};

void feeder_init(feeder *f, uv_stream_t *out, const void *data, size_t len, feed_mode mode,
                 uint64_t seed, int lockstep, int shutdown);
/* Issues the next fragment if none is in flight and (lockstep) the reader
 * has received every byte sent so far. */
void feeder_pump(feeder *f, size_t received);

typedef struct collector collector;
struct collector {
    bh_reader reader;
    bh_buf buf;
    feeder *feed;
    int split_lines;   /* split '\n'-terminated lines off in each BH_OK callback */
    int keep_lines;    /* keep the split slices (else release them at once) */
    bh_bytes *lines;
    size_t nlines, lines_cap;
    uint8_t *transcript; /* bytes taken off the buffer, in order */
    size_t transcript_len, transcript_cap;
    size_t received;     /* bytes the reader appended */
    size_t left;         /* buffer length at the end of the previous callback */
    size_t max_len_seen;
    size_t ok_calls;
    size_t final_calls;  /* non-BH_OK callbacks */
    int final_status;
    size_t tail_at_final;
    void (*hook)(collector *c, int status);
    void *test_ctx;
};

/* Initialises c with a buffer of max_len, binds its reader to s. */
void collector_init(collector *c, uv_stream_t *s, size_t max_len, size_t read_reserve);
/* Appends bytes to the transcript (test memory, not the library allocator). */
void collector_record(collector *c, const uint8_t *p, size_t n);
/* Releases kept lines, the transcript and the buffer. */
void collector_free(collector *c);
/* Asserts transcript + buffer tail == input, and, when lines were kept,
 * that they are exactly input's complete lines in order. */
void collector_assert_matches(const collector *c, const uint8_t *input, size_t len);
/* Starts c's reader, issues the first fragment of c->feed and runs loop
 * until it has nothing left to do (at most timeout_ms); asserts each step. */
void collector_run(collector *c, uv_loop_t *loop, unsigned timeout_ms);
/* Frees the collector, then asserts the loop closes with no handle left
 * (test_uv_loop_teardown). */
void collector_teardown(collector *c, uv_loop_t *loop);

/* Fills out[0..*len) with nlines lines of 0..max_line seeded random bytes
 * (any value but '\n'), each ending in '\n', then `tail` bytes without one.
 * Returns a malloc'd buffer (caller frees). */
uint8_t *make_lines(uint64_t seed, size_t nlines, size_t max_line, size_t tail, size_t *len);

uint64_t fixture_rand(uint64_t *state);

#endif
