/* conn_body.c - like conn.c, for fragments that are statements: they run
 * inside a function with a connection, a loop, a queue, a stream and a
 * frame in scope (tests/doc_snippets.py). */
#include <stdio.h>
#include <stdlib.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

typedef struct conn {
    uv_tcp_t tcp;
    uv_tcp_t upstream_tcp;
    bh_buf in;
    bh_reader reader;
    bh_writeq upstream;
    bh_bytes held;
} conn;

void on_written(bh_writeq *q, int status, void *ctx);
void on_drain(bh_writeq *q, void *ctx);

void snippet(conn *c, uv_loop_t *loop);
void snippet(conn *c, uv_loop_t *loop)
{
    bh_writeq q;
    uv_tcp_t tcp;
    bh_bytes frame = {0};
    (void)c, (void)loop, (void)q, (void)tcp, (void)frame;
    /* SNIPPET */
}
