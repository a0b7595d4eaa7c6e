/* test_log.c - tools/log: the one log line format of the programs, read
 * back from a pipe that stands in for stderr: timestamp, level, conn and
 * peer fields, control bytes replaced, long lines cut, one write per line
 * from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <regex.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <uv.h>

#include "log.h"

#define LOG_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

/* Runs fn with stderr redirected to a pipe; returns what it wrote (static
 * buffer, NUL-terminated). */
static const char *captured(void (*fn)(void))
{
    static char buf[1 << 16];
    int fds[2], saved = dup(STDERR_FILENO);
    assert_int_equal(pipe(fds), 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    close(fds[1]);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    buf[n] = '\0';
    return buf;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("'%s' does not match '%s'", text, pattern);
}

static void log_fields(void)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    uv_ip4_addr("127.0.0.1", 5555, &in);
    uv_ip6_addr("::1", 443, &in6);
    log_msg(LOG_LEVEL_WARN, 17, (const struct sockaddr *)&in, "refused %s", "x");
    log_msg(LOG_LEVEL_ERROR, 0, NULL, "no fields");
    log_msg(LOG_LEVEL_INFO, 3, (const struct sockaddr *)&in6, "v6");
}

static void a_line_has_time_level_conn_peer_and_message(void **state)
{
    (void)state;
    const char *out = captured(log_fields);
    assert_matches(out, LOG_RE "warn conn=17 peer=127\\.0\\.0\\.1:5555 refused x\n"
                               "[^\n]+Z error no fields\n"
                               "[^\n]+Z info conn=3 peer=\\[::1\\]:443 v6\n$");
}

static void log_hostile(void)
{
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_msg(LOG_LEVEL_WARN, 1, NULL, "name=%s", "x\ninjected\x1b[31m\x07");
    log_msg(LOG_LEVEL_WARN, 2, NULL, "%s", big);
}

static void control_bytes_are_replaced_and_long_lines_cut(void **state)
{
    (void)state;
    const char *out = captured(log_hostile);
    assert_matches(out, LOG_RE "warn conn=1 name=x\\?injected\\?\\[31m\\?\n");
    const char *second = strchr(out, '\n') + 1;
    assert_int_equal(strlen(second), LOG_LINE_MAX + 1); /* the newline */
    assert_memory_equal(second + LOG_LINE_MAX - 3, "...\n", 4);
}

#define THREADS 4
#define LINES 100 /* 4 x 100 lines stay well inside a pipe's 64 KiB */

static void log_many(void *arg)
{
    for (int i = 0; i < LINES; i++)
        log_msg(LOG_LEVEL_INFO, (uint64_t)(uintptr_t)arg, NULL, "line %d of a thread", i);
}

static void log_from_threads(void)
{
    uv_thread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&t[i], log_many, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
}

static void threads_never_interleave_within_a_line(void **state)
{
    (void)state;
    const char *out = captured(log_from_threads);
    int lines = 0;
    for (const char *p = out; *p; lines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[256];
        assert_true((size_t)(nl - p) < sizeof line);
        memcpy(line, p, (size_t)(nl - p));
        line[nl - p] = '\0';
        assert_matches(line, LOG_RE "info conn=[1-4] line [0-9]+ of a thread$");
        p = nl + 1;
    }
    assert_int_equal(lines, THREADS * LINES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_line_has_time_level_conn_peer_and_message),
        cmocka_unit_test(control_bytes_are_replaced_and_long_lines_cut),
        cmocka_unit_test(threads_never_interleave_within_a_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
