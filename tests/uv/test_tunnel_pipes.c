/* test_tunnel_pipes.c - the splice path's per-thread pool of empty pipes,
 * over real loopback TCP: a tunnel that ends gives its empty pipes back and
 * the next one takes them instead of creating new ones; a pipe that still
 * holds bytes when its tunnel ends is closed, never pooled;
 * bh_tunnel_pipes_trim() closes the pooled ones. The pipes are
 * observed as the process has them (/proc/self/fd and FIONREAD). */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_main.h"
#include "tunnel_fixture.h"

#define RUN_MS 240000u /* a safety bound only: nothing is timed */

/* The pipes this process has open besides libuv's own (each counted once,
 * by its inode) and how many of them hold bytes. */
typedef struct pipes {
    size_t open, nonempty;
} pipes;

/* Pipes not counted: libuv's (its signal lock is a pipe holding a byte). */
static char g_theirs[16][32];
static size_t g_ntheirs;

static int theirs(const char *name)
{
    for (size_t i = 0; i < g_ntheirs; i++)
        if (strcmp(g_theirs[i], name) == 0)
            return 1;
    return 0;
}

/* Calls each(fd, name, ctx) for every pipe fd the process has open; name
 * is "pipe:[INODE]", the same for both ends of one pipe. */
static void scan_pipes(void (*each)(int fd, const char *name, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[32];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0 || strncmp(target, "pipe:", 5) != 0)
            continue;
        target[n] = '\0';
        each(atoi(e->d_name), target, ctx);
    }
    closedir(d);
}

typedef struct counting {
    pipes p;
    char seen[64][32];
} counting;

static void count_pipe(int fd, const char *name, void *ctx)
{
    counting *c = ctx;
    if (theirs(name))
        return;
    int queued = 0;
    assert_int_equal(ioctl(fd, FIONREAD, &queued), 0);
    size_t i = 0;
    while (i < c->p.open && strcmp(c->seen[i], name) != 0)
        i++;
    if (i < c->p.open)
        return; /* the other end of a pipe already counted */
    assert_true(c->p.open < 64);
    strcpy(c->seen[c->p.open++], name);
    c->p.nonempty += queued > 0;
}

static pipes open_pipes(void)
{
    counting c = {{0, 0}, {{0}}};
    scan_pipes(count_pipe, &c);
    return c.p;
}

static void note_pipe(int fd, const char *name, void *ctx)
{
    (void)fd, (void)ctx;
    assert_true(g_ntheirs < 16);
    strcpy(g_theirs[g_ntheirs++], name);
}

/* Makes libuv create its process-wide pipes (a loop does), then notes every
 * pipe open now as not ours: once, before any tunnel ran (later the pool
 * holds pipes too). */
static void note_libuvs_pipes(void)
{
    static int noted;
    if (noted++)
        return;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    g_ntheirs = 0;
    scan_pipes(note_pipe, NULL);
}

static int huge_skipped(void) { return getenv("BH_SKIP_HUGE_TESTS") != NULL; }

/* Both peers send 8 MiB (1 MiB under TSan and valgrind) in large chunks and
 * half-close: both directions splice. */
static void splice_both_ways(void)
{
    size_t len = huge_skipped() ? (size_t)1 << 20 : (size_t)8 << 20;
    tf t;
    tf_setup(&t);
    for (int s = 0; s < 2; s++) {
        t.peer[s].send_len = len;
        t.peer[s].max_chunk = 65536;
    }
    bh_tunnel_config c = bh_tunnel_config_default();
    assert_int_equal(bh_tunnel_start(&t.tunnel, &t.loop, (uv_stream_t *)&t.side[0],
                                     (uv_stream_t *)&t.side[1], NULL, NULL, &c, tf_done, &t),
                     0);
    tf_start_peers(&t);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.status, 0);
    for (int s = 0; s < 2; s++) {
        assert_int_equal(t.peer[s].received, len);
        assert_true(t.final.spliced[s] > 0);
    }
}

/* Each tunnel splices both ways. A direction takes a pipe from the pool or
 * makes one, and gives it back empty at its EOF, where the other direction
 * may take it: a tunnel leaves one or two pipes in the pool. The next tunnels
 * take those: the pool does not grow, and everything in it is empty. */
static void empty_pipes_go_to_the_pool_and_the_next_tunnel_takes_them(void **state)
{
    (void)state;
    note_libuvs_pipes();
    pipes before = open_pipes();
    for (int round = 0; round < 3; round++) {
        splice_both_ways();
        pipes now = open_pipes();
        assert_in_range(now.open, before.open + 1, before.open + 2);
        assert_int_equal(now.nonempty, 0);
    }
    bh_tunnel_pipes_trim(); /* gives the pooled pipes' fds back */
    assert_int_equal(open_pipes().open, before.open);
}

/* A splices into B, which stops reading after 4 MiB: B's socket fills, the
 * pipe holds what it could not pass on, and the tunnel is aborted then. */
static void a_pipe_holding_bytes_when_its_tunnel_ends_is_closed(void **state)
{
    (void)state;
    note_libuvs_pipes();
    splice_both_ways(); /* the pool holds two pipes now */
    pipes before = open_pipes();
    assert_int_equal(before.nonempty, 0);
    tf t;
    tf_setup(&t);
    t.peer[0].send_len = (size_t)64 << 20;
    t.peer[0].max_chunk = 65536;
    t.peer[0].end = PEER_STAY;
    t.peer[1].recv_limit = (size_t)4 << 20;
    t.peer[1].end = PEER_STAY;
    bh_tunnel_config c = bh_tunnel_config_default();
    assert_int_equal(bh_tunnel_start(&t.tunnel, &t.loop, (uv_stream_t *)&t.side[0],
                                     (uv_stream_t *)&t.side[1], NULL, NULL, &c, tf_done, &t),
                     0);
    tf_start_peers(&t);
    struct bh_tunnel_stats st = {0};
    int held = 0;
    for (long i = 0; i < 10000000 && !held; i++) {
        uv_run(&t.loop, UV_RUN_NOWAIT); /* the tunnel ends up waiting */
        bh_tunnel_stats(&t.tunnel, &st);
        held = st.splicing[0] && st.backpressure[0] > 0 && open_pipes().nonempty > 0;
    }
    assert_true(held); /* splicing, waiting on B with bytes in the pipe */
    bh_tunnel_abort(&t.tunnel);
    assert_int_equal(tf_run(&t, RUN_MS), 0);
    assert_int_equal(t.status, BH_ECANCELED);
    pipes after = open_pipes();
    assert_int_equal(after.nonempty, 0);
    assert_int_equal(after.open, before.open - 1); /* A's pooled pipe was taken, then closed */
}

TEST_MAIN(test_alloc_checked(empty_pipes_go_to_the_pool_and_the_next_tunnel_takes_them),
          test_alloc_checked(a_pipe_holding_bytes_when_its_tunnel_ends_is_closed))
