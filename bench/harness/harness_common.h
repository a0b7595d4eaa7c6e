/* harness_common.h - pieces shared by the stream harness programs (driver,
 * proxy, sink): option parsing, addresses, sockets, FNV-1a and clocks.
 *
 * An address is "IPV4:PORT" (TCP; port 0 picks a free port when listening)
 * or "unix:PATH" (a unix domain stream socket, the "pipe" transport).
 * Everything here is plain POSIX; nothing depends on libuv or libevent. */
#ifndef BH_HARNESS_COMMON_H
#define BH_HARNESS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A parsed address, ready for bind()/connect(). */
typedef struct hx_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int is_unix;
} hx_addr;

/* Parses "IPV4:PORT" or "unix:PATH". Returns 0 or -1 (message on stderr). */
int hx_addr_parse(const char *text, hx_addr *out);

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

/* Parses a byte count with an optional suffix: K/KB/KiB (1024), M/MiB, G/GiB.
 * Returns 0 or -1 on a malformed or overflowing value. */
int hx_parse_size(const char *text, size_t *out);

/* Parses a non-negative decimal number (fractions allowed, e.g. "2.5"). */
int hx_parse_double(const char *text, double *out);

/* FNV-1a 64-bit, continued from h (start with HX_FNV_OFFSET). */
#define HX_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t hx_fnv1a64(uint64_t h, const void *p, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t hx_now_ns(void);

/* Prints "prog: message" and exits 2 (usage errors). */
void hx_die(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
