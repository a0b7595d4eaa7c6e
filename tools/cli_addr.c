/* cli_addr.c - "IPV4:PORT" and "[IPV6]:PORT" to a socket address with
 * libuv's uv_ip4_addr()/uv_ip6_addr(), and the port of a bound address. */
#include "cli.h"

#include <string.h>

#include <uv.h>

int cli_parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host)
        return UV_EINVAL;
    uint64_t port;
    if (cli_parse_size(colon + 1, 65535, &port) != CLI_OK || colon[1] < '0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
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

int cli_addr_port(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return -1;
}
