/* cli.h - command-line plumbing shared by every program in examples/,
 * tests/e2e/ and bench/: one strict parser for counts and byte sizes, one
 * for durations, one for network addresses (on uv_ip4_addr/uv_ip6_addr), the
 * usage-error exit and --version. Programs parse their options with getopt_long(3)
 * through cli_next_option() and hand each value to these functions, naming
 * the option.
 *
 * Grammar of a size: decimal digits, then optionally one suffix K, M or G
 * (lower case, KB/KiB, MB/MiB and GB/GiB too; powers of 1024). Nothing else:
 * no sign, no blanks, no trailing characters; a value whose bytes overflow
 * 64 bits or exceed the caller's maximum is refused, never wrapped. */
#ifndef BH_CLI_H
#define BH_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CLI_KIB UINT64_C(1024)
#define CLI_MIB (CLI_KIB * 1024)
#define CLI_GIB (CLI_MIB * 1024)

/* Option code of --version; put CLI_STANDARD_OPTIONS (--help, -h and
 * --version) in every option table. */
#define CLI_OPT_VERSION 'V'
#define CLI_STANDARD_OPTIONS                                                                       \
    {"help", no_argument, NULL, 'h'}, { "version", no_argument, NULL, CLI_OPT_VERSION }

/* Why a parse failed. */
enum { CLI_OK = 0, CLI_EINVAL = -1, CLI_ERANGE = -2 };

/* Names the program in messages ("prog: ..."): the base name of prog
 * (argv[0]); call first in main(). */
void cli_init(const char *prog);

/* The name cli_init() set, for messages printed without cli_die(). */
const char *cli_prog(void);

/* Parses a size (see the grammar above) no greater than max into *out.
 * Returns CLI_OK, CLI_EINVAL (malformed) or CLI_ERANGE (above max or
 * overflowing); *out is unchanged on failure. */
int cli_parse_size(const char *text, uint64_t max, uint64_t *out);

/* Parses a non-negative finite decimal number ("2.5") no greater than max.
 * Returns CLI_OK, CLI_EINVAL or CLI_ERANGE; *out is unchanged on failure. */
int cli_parse_seconds(const char *text, double max, double *out);

/* Parses "IPV4:PORT" or "[IPV6]:PORT" (port 0..65535) with uv_ip4_addr() or
 * uv_ip6_addr() into *out. Returns 0 or a negative libuv error (UV_EINVAL). */
int cli_parse_addr(const char *text, struct sockaddr_storage *out);

/* The value of option opt (e.g. "--items") as a size in [min, max]. On a bad
 * value prints "prog: --items: ..." saying what is wrong and exits 2. */
uint64_t cli_size(const char *opt, const char *text, uint64_t min, uint64_t max);

/* The value of option opt as seconds in [0, max]; exits 2 like cli_size(). */
double cli_seconds(const char *opt, const char *text, double max);

/* Like cli_parse_addr(), and also "HOST:PORT" with a host name, resolved
 * once, now, with getaddrinfo(3) (blocking: call it at start-up): the first
 * IPv4 address of HOST, else its first IPv6 one. A numeric address is never
 * looked up. Returns 0 or a negative libuv error (UV_EINVAL: malformed,
 * UV_EAI_NONAME: the name does not resolve). */
int cli_resolve_addr(const char *text, struct sockaddr_storage *out);

/* The value of option opt as an address (cli_resolve_addr(): host names are
 * resolved at start-up); exits 2 like cli_size() on a bad one. */
void cli_addr(const char *opt, const char *text, struct sockaddr_storage *out);

/* Port of an AF_INET or AF_INET6 address in host order, or -1. */
int cli_addr_port(const struct sockaddr_storage *addr);

/* getopt_long(argc, argv, "h", options) that also handles the standard
 * options: --help/-h prints usage(stdout) and exits 0, --version prints
 * cli_version() and exits 0, an unknown option, a missing value or a value
 * for an option that takes none exits 2 (cli_die(): "prog: ...", never
 * getopt's own message), and a leftover non-option argument at the end
 * exits 2. Returns the next
 * option's code (optarg set), or -1 when all are read. */
int cli_next_option(int argc, char **argv, const struct option *options,
                    void (*usage)(FILE *out));

/* Prints "prog: message" and "(see prog --help)" on stderr, exits 2. */
void cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Prints "prog: message" on stderr and exits 1 (a failure at run time, not
 * a usage error). */
void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Prints "prog (libbytes_handoff) X.Y.Z" with the version of the linked
 * library on stdout; the caller then exits 0. */
void cli_version(void);

#endif
