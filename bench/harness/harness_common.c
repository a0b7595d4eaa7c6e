/* harness_common.c - option parsing, addresses, sockets, FNV-1a and clocks
 * shared by the stream harness programs. */
#include "harness_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int hx_addr_parse(const char *text, hx_addr *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        const char *path = text + 5;
        if (*path == '\0' || strlen(path) >= sizeof un->sun_path) {
            fprintf(stderr, "bad unix socket path: %s\n", text);
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        out->len = (socklen_t)sizeof *un;
        out->is_unix = 1;
        return 0;
    }
    const char *colon = strrchr(text, ':');
    char host[64];
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "bad address (want IPV4:PORT or unix:PATH): %s\n", text);
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
    if (errno || *end || end == colon + 1 || port > 65535 ||
        inet_pton(AF_INET, host, &in->sin_addr) != 1) {
        fprintf(stderr, "bad address (want IPV4:PORT or unix:PATH): %s\n", text);
        return -1;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    out->len = (socklen_t)sizeof *in;
    return 0;
}

void hx_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int hx_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl);
}

int hx_listen(const hx_addr *a, int backlog)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    if (a->is_unix) {
        (void)unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
    } else {
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, backlog) != 0) {
        perror("bind/listen");
        close(fd);
        return -1;
    }
    if (a->is_unix) {
        printf("listening %s\n", ((const struct sockaddr_un *)&a->ss)->sun_path);
    } else {
        struct sockaddr_in bound;
        socklen_t blen = sizeof bound;
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
            perror("getsockname");
            close(fd);
            return -1;
        }
        printf("listening %u\n", (unsigned)ntohs(bound.sin_port));
    }
    fflush(stdout);
    return fd;
}

int hx_connect(const hx_addr *a, int nonblock)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    if (!a->is_unix)
        hx_set_nodelay(fd);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0 &&
        !(nonblock && errno == EINPROGRESS)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int hx_parse_size(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024ull;
    else if (*end == 'M' || *end == 'm')
        mul = 1024ull * 1024;
    else if (*end == 'G' || *end == 'g')
        mul = 1024ull * 1024 * 1024;
    if (mul != 1) {
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
            end += strlen(end);
    } else if (strcmp(end, "B") == 0) {
        end++;
    }
    if (*end != '\0' || v > (unsigned long long)SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

int hx_parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(v >= 0))
        return -1;
    *out = v;
    return 0;
}

uint64_t hx_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t hx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hx_die(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}
