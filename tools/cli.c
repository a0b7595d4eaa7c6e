/* cli.c - strict number, size and duration parsing, usage errors and
 * --version for the example and bench programs (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <uv.h>

static const char *prog = "program";

void cli_init(const char *name)
{
    const char *slash = name ? strrchr(name, '/') : NULL;
    prog = slash ? slash + 1 : name ? name : prog;
}

static const struct {
    const char *suffix;
    unsigned shift;
} suffixes[] = {
    {"", 0},    {"K", 10},  {"k", 10},  {"KB", 10}, {"KiB", 10}, {"M", 20}, {"m", 20},
    {"MB", 20}, {"MiB", 20}, {"G", 30}, {"g", 30},  {"GB", 30},  {"GiB", 30},
};

int cli_parse_size(const char *text, uint64_t max, uint64_t *out)
{
    char *end;
    if (!text || *text < '0' || *text > '9')
        return CLI_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    int overflow = errno == ERANGE;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (strcmp(end, suffixes[i].suffix) != 0)
            continue;
        if (overflow || v > (UINT64_MAX >> suffixes[i].shift) ||
            ((uint64_t)v << suffixes[i].shift) > max)
            return CLI_ERANGE;
        *out = (uint64_t)v << suffixes[i].shift;
        return CLI_OK;
    }
    return CLI_EINVAL;
}

int cli_parse_seconds(const char *text, double max, double *out)
{
    char *end;
    if (!text || ((*text < '0' || *text > '9') && *text != '.'))
        return CLI_EINVAL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0')
        return CLI_EINVAL;
    if (errno == ERANGE || !isfinite(v) || v > max)
        return CLI_ERANGE;
    *out = v;
    return CLI_OK;
}

/* "prog: message" on stderr, then "(see prog --help)" for usage errors. */
static void report(int usage_error, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (usage_error)
        fprintf(stderr, "(see %s --help)\n", prog);
}

void cli_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(1, fmt, ap);
    va_end(ap);
    exit(2);
}

void cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(0, fmt, ap);
    va_end(ap);
    exit(1);
}

const char *cli_prog(void) { return prog; }

int cli_next_option(int argc, char **argv, const struct option *options,
                    void (*usage)(FILE *out))
{
    /* getopt_long() reports nothing itself (it would name argv[0], which
     * may be a path or a mode word): ":" makes a missing value ':'. */
    opterr = 0;
    int c = getopt_long(argc, argv, ":h", options, NULL);
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    switch (c) {
    case 'h':
        usage(stdout);
        exit(0);
    case CLI_OPT_VERSION:
        cli_version();
        exit(0);
    case ':':
        cli_die("option '%s' needs a value", arg);
    case '?':
        if (optopt > 0 && optopt < 256 && arg[0] == '-' && arg[1] != '-')
            cli_die("unknown option '-%c'", optopt);
        if (optopt != 0 && strchr(arg, '='))
            cli_die("option '%.*s' takes no value", (int)strcspn(arg, "="), arg);
        cli_die("unknown option '%.*s'", (int)strcspn(arg, "="), arg);
    case -1:
        if (optind < argc)
            cli_die("unexpected argument '%s'", argv[optind]);
        return -1;
    default:
        return c;
    }
}

uint64_t cli_size(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    uint64_t v = 0;
    int rc = cli_parse_size(text, max, &v);
    if (rc == CLI_EINVAL)
        cli_die("%s: '%s' is not a number (digits, optionally K, M or G)", opt,
                text ? text : "");
    if (rc == CLI_ERANGE || v < min)
        cli_die("%s: '%s' is out of range (%llu..%llu)", opt, text, (unsigned long long)min,
                (unsigned long long)max);
    return v;
}

double cli_seconds(const char *opt, const char *text, double max)
{
    double v = 0;
    int rc = cli_parse_seconds(text, max, &v);
    if (rc == CLI_EINVAL)
        cli_die("%s: '%s' is not a number of seconds", opt, text ? text : "");
    if (rc == CLI_ERANGE)
        cli_die("%s: '%s' is out of range (0..%g)", opt, text, max);
    return v;
}

void cli_addr(const char *opt, const char *text, struct sockaddr_storage *out)
{
    int rc = text ? cli_resolve_addr(text, out) : UV_EINVAL;
    if (rc == UV_EINVAL)
        cli_die("%s: '%s' is not an address (HOST:PORT, IPV4:PORT or [IPV6]:PORT)", opt,
                text ? text : "");
    if (rc != 0)
        cli_die("%s: cannot resolve '%s': %s", opt, text, uv_strerror(rc));
}

void cli_version(void)
{
    printf("%s (libbytes_handoff) %s\n", prog, bh_version_string());
}
