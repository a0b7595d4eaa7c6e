/* test_cli.c - the option-value parsers every example and bench program
 * shares (examples/common/cli.h): sizes, seconds and addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "cli.h"
#include "fnv1a.h"

static void size_accepts_digits_and_every_binary_suffix(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t value;
    } ok[] = {
        {"0", 0},          {"4096", 4096},          {"1K", 1024},         {"1k", 1024},
        {"2KB", 2048},     {"3KiB", 3072},          {"1M", 1 << 20},      {"1MiB", 1 << 20},
        {"1G", 1u << 30},  {"1GiB", 1u << 30},      {"16777215G", UINT64_C(16777215) << 30},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(cli_parse_size(ok[i].text, UINT64_MAX, &v), CLI_OK);
        assert_true(v == ok[i].value);
    }
}

static void size_refuses_signs_blanks_and_trailing_garbage_and_keeps_the_output(void **state)
{
    (void)state;
    static const char *const bad[] = {"", " 1", "1 ", "-1", "+1", "1x", "1KK", "1Ki",
                                      "0x10", "1.5K", "K", "1e3", "1B"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(cli_parse_size(bad[i], UINT64_MAX, &v), CLI_EINVAL);
        assert_true(v == 7);
    }
    uint64_t v = 7;
    assert_int_equal(cli_parse_size(NULL, UINT64_MAX, &v), CLI_EINVAL);
}

static void size_refuses_overflow_instead_of_wrapping(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(cli_parse_size("99999999999999999999", UINT64_MAX, &v), CLI_ERANGE);
    assert_int_equal(cli_parse_size("18446744073709551616", UINT64_MAX, &v), CLI_ERANGE);
    assert_int_equal(cli_parse_size("17179869184G", UINT64_MAX, &v), CLI_ERANGE);
    assert_int_equal(cli_parse_size("1025", 1024, &v), CLI_ERANGE);
    assert_int_equal(cli_parse_size("2K", 2047, &v), CLI_ERANGE);
    assert_true(v == 7);
    assert_int_equal(cli_parse_size("2K", 2048, &v), CLI_OK);
    assert_true(v == 2048);
}

static void seconds_take_fractions_and_refuse_the_rest(void **state)
{
    (void)state;
    double v = -1;
    assert_int_equal(cli_parse_seconds("2.5", 10, &v), CLI_OK);
    assert_true(v == 2.5);
    assert_int_equal(cli_parse_seconds("0", 10, &v), CLI_OK);
    assert_true(v == 0);
    static const char *const bad[] = {"", "-1", "1s", "nan", "inf", " 1", "1e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cli_parse_seconds(bad[i], 10, &v), CLI_EINVAL);
    assert_int_equal(cli_parse_seconds("10.5", 10, &v), CLI_ERANGE);
    assert_int_equal(cli_parse_seconds("1e999", 1e300, &v), CLI_ERANGE);
}

static void address_accepts_ipv4_and_bracketed_ipv6(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(cli_parse_addr("127.0.0.1:8080", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(cli_addr_port(&ss), 8080);
    assert_int_equal(cli_parse_addr("[::1]:0", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(cli_addr_port(&ss), 0);
    assert_int_equal(cli_parse_addr("[fe80::1]:65535", &ss), 0);
    assert_int_equal(cli_addr_port(&ss), 65535);
}

static void address_refuses_bad_hosts_and_ports(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1",    "127.0.0.1:",     ":80",        "127.0.0.1:65536", "127.0.0.1:1K",
        "127.0.0.1:-1", "127.0.0.1:80x",  "::1:80",     "[::1]80",         "[]:80",
        "localhost:80", "256.0.0.1:80",   "[::1:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        assert_int_not_equal(cli_parse_addr(bad[i], &ss), 0);
    }
}

static void resolve_takes_numbers_and_host_names_and_refuses_malformed_ones(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(cli_resolve_addr("127.0.0.1:8080", &ss), 0);
    assert_int_equal(cli_addr_port(&ss), 8080);
    assert_int_equal(cli_resolve_addr("[::1]:7", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    /* "localhost" is in every /etc/hosts; its IPv4 address comes first. */
    assert_int_equal(cli_resolve_addr("localhost:443", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(cli_addr_port(&ss), 443);
    assert_true(((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    /* Malformed without a look-up: no port, bad port, bare IPv6, bad number. */
    static const char *const bad[] = {"localhost",   "localhost:",  "localhost:65536",
                                      "localhost:1x", "::1:80",     "256.0.0.1:80",
                                      ":80",          "[localhost]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ss.ss_family = AF_UNSPEC;
        assert_int_equal(cli_resolve_addr(bad[i], &ss), UV_EINVAL);
    }
}

static void fnv1a64_matches_the_published_test_vectors(void **state)
{
    (void)state;
    assert_true(fnv1a64(FNV1A64_OFFSET, "", 0) == UINT64_C(0xcbf29ce484222325));
    assert_true(fnv1a64(FNV1A64_OFFSET, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(fnv1a64(FNV1A64_OFFSET, "foobar", 6) == UINT64_C(0x85944171f73967e8));
    assert_true(fnv1a64(fnv1a64(FNV1A64_OFFSET, "foo", 3), "bar", 3) ==
                UINT64_C(0x85944171f73967e8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(size_accepts_digits_and_every_binary_suffix),
        cmocka_unit_test(size_refuses_signs_blanks_and_trailing_garbage_and_keeps_the_output),
        cmocka_unit_test(size_refuses_overflow_instead_of_wrapping),
        cmocka_unit_test(seconds_take_fractions_and_refuse_the_rest),
        cmocka_unit_test(address_accepts_ipv4_and_bracketed_ipv6),
        cmocka_unit_test(address_refuses_bad_hosts_and_ports),
        cmocka_unit_test(resolve_takes_numbers_and_host_names_and_refuses_malformed_ones),
        cmocka_unit_test(fnv1a64_matches_the_published_test_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
