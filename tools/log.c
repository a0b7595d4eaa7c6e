/* log.c - one log line per write(2) on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

static const char *const level_words[] = {"error", "warn", "info"};

const char *log_addr(const struct sockaddr *addr, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        uv_ip4_name(in, ip, sizeof ip);
        snprintf(buf, len, "%s:%d", ip, ntohs(in->sin_port));
    } else if (addr && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        uv_ip6_name(in6, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

/* Appends the vsnprintf-style result at line + *n, capped at LOG_LINE_MAX. */
static void append(char *line, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + *n, LOG_LINE_MAX + 1 - *n, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k < LOG_LINE_MAX - *n ? (size_t)k : LOG_LINE_MAX - *n;
}

void log_msg(log_level level, uint64_t conn_id, const struct sockaddr *peer, const char *fmt, ...)
{
    char line[LOG_LINE_MAX + 2];
    size_t n = 0;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    append(line, &n, ".%03ldZ %s", ts.tv_nsec / 1000000L,
           level_words[level <= LOG_LEVEL_INFO ? level : LOG_LEVEL_INFO]);
    if (conn_id)
        append(line, &n, " conn=%llu", (unsigned long long)conn_id);
    if (peer && (peer->sa_family == AF_INET || peer->sa_family == AF_INET6)) {
        char addr[INET6_ADDRSTRLEN + 10];
        append(line, &n, " peer=%s", log_addr(peer, addr, sizeof addr));
    }
    append(line, &n, " ");
    size_t msg = n;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, LOG_LINE_MAX + 1 - n, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < LOG_LINE_MAX - n ? (size_t)k : LOG_LINE_MAX - n;
    if (k > 0 && (size_t)k > LOG_LINE_MAX - msg)
        memcpy(line + n - 3, "...", 3);
    for (size_t i = msg; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}
