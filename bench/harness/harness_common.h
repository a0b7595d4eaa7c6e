/* harness_common.h - pieces shared by the stream harness programs (driver,
 * proxy, sink): addresses, sockets and clocks. Option values, usage errors,
 * --version and FNV-1a come from tools/ (cli.h, fnv1a.h), shared
 * with the examples.
 *
 * An address is "IPV4:PORT" or "[IPV6]:PORT" (TCP; port 0 picks a free port
 * when listening) or "unix:PATH" (a unix domain stream socket, the "pipe"
 * transport). */
#ifndef BH_HARNESS_COMMON_H
#define BH_HARNESS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cli.h"
#include "fnv1a.h"

/* A parsed address, ready for bind()/connect(). */
typedef struct hx_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int is_unix;
} hx_addr;

/* The value of option opt as "IPV4:PORT", "[IPV6]:PORT" or "unix:PATH";
 * exits 2 naming the option when it is none of them. */
void hx_addr_option(const char *opt, const char *text, hx_addr *out);

/* Opens a blocking listening socket on a (SO_REUSEADDR for TCP; an existing
 * unix socket file is replaced) and prints "listening PORT" (TCP, the bound
 * port) or "listening PATH" (unix) on stdout, flushed. Returns the fd or -1. */
int hx_listen(const hx_addr *a, int backlog);

/* Creates a socket for a and connects it (blocking when nonblock is 0, else
 * the connect is started nonblocking and may still be in progress). TCP
 * sockets get TCP_NODELAY. Returns the fd or -1 (errno set). */
int hx_connect(const hx_addr *a, int nonblock);

/* Sets TCP_NODELAY on a TCP socket fd; harmless on other fds. */
void hx_set_nodelay(int fd);

/* Sets or clears O_NONBLOCK. Returns 0 or -1. */
int hx_set_nonblock(int fd, int on);

/* Monotonic clock in nanoseconds. */
uint64_t hx_now_ns(void);

#endif
