/* cli_addr.c - "IPV4:PORT" and "[IPV6]:PORT" to a socket address with
 * libuv's uv_ip4_addr()/uv_ip6_addr(), "HOST:PORT" with getaddrinfo(3) at
 * start-up, and the port of a bound address. */
#include "cli.h"

#include <netdb.h>
#include <string.h>

#include <uv.h>

/* The digits after "HOST:" as a port, 0..65535. Returns 0 or -1. */
static int parse_port(const char *digits, uint64_t *port)
{
    if (cli_parse_size(digits, 65535, port) != CLI_OK || digits[0] < '0' ||
        strspn(digits, "0123456789") != strlen(digits))
        return -1;
    return 0;
}

int cli_parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host)
        return UV_EINVAL;
    uint64_t port;
    if (parse_port(colon + 1, &port) != 0)
        return UV_EINVAL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc;
    if (text[0] == '[') {
        size_t n = (size_t)(colon - text) - 2;
        if (colon[-1] != ']' || n == 0)
            return UV_EINVAL;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
    } else {
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
    }
    if (rc != 0)
        return rc;
    *out = ss;
    return 0;
}

int cli_resolve_addr(const char *text, struct sockaddr_storage *out)
{
    if (cli_parse_addr(text, out) == 0)
        return 0;
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || text[0] == '[' || (size_t)(colon - text) >= sizeof host)
        return UV_EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    uint64_t port;
    /* A name, not a malformed number: no ':' (IPv6 needs brackets), not
     * only digits and dots ("256.0.0.1"). */
    if (parse_port(colon + 1, &port) != 0 || strchr(host, ':') ||
        strspn(host, "0123456789.") == strlen(host))
        return UV_EINVAL;
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return UV_EAI_NONAME;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && !pick)
            pick = ai;
    }
    if (!pick) {
        freeaddrinfo(res);
        return UV_EAI_ADDRFAMILY;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    uint16_t p = htons((uint16_t)port);
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = p;
    else
        ((struct sockaddr_in6 *)out)->sin6_port = p;
    freeaddrinfo(res);
    return 0;
}

int cli_addr_port(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return -1;
}
