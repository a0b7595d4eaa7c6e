/* stream_reset.c - telling an RST from a FIN at EOF on a TCP stream.
 *
 * libuv turns POLLHUP after a partial read into UV_EOF without reading
 * again, so an RST that arrives right behind the last data (a peer closing
 * with SO_LINGER 0, or after unread input) reaches the user as a clean EOF.
 * The socket still holds the error then: SO_ERROR reads ECONNRESET, or EPIPE
 * when the RST followed the peer's FIN (CLOSE_WAIT). Reading SO_ERROR clears
 * it; nothing else reads it after an EOF. */
#include <sys/socket.h>

#include "stream_internal.h"

int bh__stream_eof_is_reset(uv_stream_t *s)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof err;
    if (uv_handle_get_type((uv_handle_t *)s) != UV_TCP || uv_fileno((uv_handle_t *)s, &fd) != 0)
        return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return 0;
    return err != 0;
}
