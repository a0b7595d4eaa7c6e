/* addr.c - address helpers shared by the content_routing parts and tests:
 * parsing "IPV4:PORT" and reading the port a listener is bound to. */
#include "content_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cr_parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host || colon == s)
        return UV_EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port > 65535)
        return UV_EINVAL;
    return uv_ip4_addr(host, (int)port, out);
}

int cr_bound_port(const uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0 || ss.ss_family != AF_INET)
        return -1;
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}
