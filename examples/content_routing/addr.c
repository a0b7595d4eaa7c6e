/* addr.c - the port a content_routing listener is bound to (addresses are
 * parsed by cli_parse_addr() in examples/common). */
#include "content_routing.h"

#include "cli.h"

int cr_bound_port(const uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return cli_addr_port(&ss);
}
