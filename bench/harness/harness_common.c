/* harness_common.c - addresses, sockets and clocks shared by the stream
 * harness programs. */
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

void hx_addr_option(const char *opt, const char *text, hx_addr *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        const char *path = text + 5;
        if (*path == '\0' || strlen(path) >= sizeof un->sun_path)
            cli_die("%s: '%s' is not a unix socket path", opt, text);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        out->len = (socklen_t)sizeof *un;
        out->is_unix = 1;
        return;
    }
    if (cli_parse_addr(text, &out->ss) != 0)
        cli_die("%s: '%s' is not an address (IPV4:PORT, [IPV6]:PORT or unix:PATH)", opt, text);
    out->len = out->ss.ss_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                              : (socklen_t)sizeof(struct sockaddr_in);
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
        struct sockaddr_storage bound;
        socklen_t blen = sizeof bound;
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
            perror("getsockname");
            close(fd);
            return -1;
        }
        printf("listening %d\n", cli_addr_port(&bound));
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

uint64_t hx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
