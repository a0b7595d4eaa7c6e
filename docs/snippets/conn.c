/* conn.c - the context the guide's and README's fragments are compiled in
 * (tests/doc_snippets.py): a proxied connection and the helpers the
 * fragments call. The fragment replaces the marker line below. */
#include <stdio.h>
#include <stdlib.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

typedef struct conn {
    uv_tcp_t tcp;          /* the client */
    uv_tcp_t upstream_tcp; /* where its bytes go */
    bh_buf in;             /* bytes read from the client */
    bh_reader reader;
    bh_writeq upstream;    /* writes to upstream_tcp */
    bh_bytes held;         /* a slice the upstream refused */
    bh_tunnel tunnel;
} conn;

void conn_close(conn *c, int status);
void handle_line(conn *c, bh_bytes *line);
void on_written(bh_writeq *q, int status, void *ctx);
void on_drain(bh_writeq *q, void *ctx);

/* SNIPPET */
