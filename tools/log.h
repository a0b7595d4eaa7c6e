/* log.h - the one log line format of every program in examples/:
 *
 *   2026-12-08T00:15:02.123Z warn conn=17 peer=127.0.0.1:5555 message
 *
 * a UTC ISO-8601 timestamp with milliseconds, the level word (error, warn,
 * info), then "conn=ID" and "peer=ADDR" when given, then the message, on
 * stderr. Each line goes out in one write(2), so lines of several threads
 * never interleave; any thread may log. Lines longer than LOG_LINE_MAX bytes
 * are cut (ending in "...") and control bytes of the message are printed as
 * '?', so a peer cannot forge lines. */
#ifndef BH_TOOLS_LOG_H
#define BH_TOOLS_LOG_H

#include <stdint.h>
#include <sys/socket.h>

#define LOG_LINE_MAX 1024

typedef enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO } log_level;

/* Writes one line: conn_id 0 leaves out "conn=", peer NULL (or not AF_INET
 * or AF_INET6) leaves out "peer=" (IPv6 as [ADDR]:PORT). */
void log_msg(log_level level, uint64_t conn_id, const struct sockaddr *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of addr into buf; "?" for another
 * family. Returns buf. */
const char *log_addr(const struct sockaddr *addr, char *buf, size_t len);

#endif
