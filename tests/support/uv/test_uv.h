/* test_uv.h - libuv helpers for tests: a loop run bounded in time, a
 * connected socketpair as two uv_pipe_t handles, a loopback TCP pair, and
 * closing every handle of a loop before it is freed. */
#ifndef BH_TEST_UV_H
#define BH_TEST_UV_H

#include <stddef.h>
#include <uv.h>

/* Runs loop until no active handles remain or timeout_ms passes. Returns 0 when
 * the loop finished by itself, -1 on timeout (the loop is stopped). */
int test_uv_run(uv_loop_t *loop, unsigned timeout_ms);

/* Creates an AF_UNIX SOCK_STREAM socketpair; opens fds[0] in a and fds[1] in
 * b (both non-blocking uv_pipe_t on loop). Returns 0 or a libuv error. */
int test_uv_socketpair(uv_loop_t *loop, uv_pipe_t *a, uv_pipe_t *b);

/* Raw socketpair (blocking fds) for tests that drive one side by hand. */
int test_socketpair(int fds[2]);

/* Connects two uv_tcp_t on 127.0.0.1 (ephemeral port): *client and *server
 * (the accepted side). Runs loop until connected (bounded). 0 or an error. */
int test_uv_tcp_pair(uv_loop_t *loop, uv_tcp_t *client, uv_tcp_t *server);

/* uv_close()s every open handle, runs the loop until they are closed and
 * uv_loop_close()s it. Returns uv_loop_close's result (0 = clean). */
int test_uv_loop_teardown(uv_loop_t *loop);

/* Sets the kernel send/receive buffer sizes of a socket fd (best effort). */
void test_set_sockbuf(int fd, int sndbuf, int rcvbuf);

#endif
