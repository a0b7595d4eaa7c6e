/* stream_reset.c - telling an RST from a FIN at EOF on a TCP stream.
 *
 * libuv turns POLLHUP after a partial read into UV_EOF without reading
 * again, so an RST that arrives right behind the last data (a peer closing
 * with SO_LINGER 0, or after unread input) reaches the user as a clean EOF.
 * The socket still holds the error then: SO_ERROR reads ECONNRESET, or EPIPE
 * when the RST followed the peer's FIN (CLOSE_WAIT). The error is reported
 * once, to whichever call asks first: a write to the same socket (the other
 * direction of a proxy) may have taken it. The socket's state still tells
 * then: a FIN leaves it in CLOSE_WAIT until our own side closes, only an RST
 * closes it (TCP_CLOSE) while our write side is still open (Linux TCP_INFO;
 * once our write side is shut down nothing writes, so SO_ERROR is kept). */
#include <sys/socket.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif

#include "stream_internal.h"

int bh__stream_eof_is_reset(uv_stream_t *s, int read_returned_zero)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof err;
    if (uv_handle_get_type((uv_handle_t *)s) != UV_TCP || uv_fileno((uv_handle_t *)s, &fd) != 0)
        return 0;
    if (!read_returned_zero && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        return 1;
#ifdef __linux__
    struct tcp_info ti;
    socklen_t ti_len = sizeof ti;
    if (uv_is_writable(s) && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &ti_len) == 0 &&
        ti.tcpi_state == TCP_CLOSE)
        return 1;
#endif
    return 0;
}
