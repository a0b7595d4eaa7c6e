/* consumer_core.c - a program that uses only the loop-free core, built the
 * way an epoll or io_uring service would: <bytes_handoff.h> and
 * `pkg-config bytes_handoff`, with no libuv on its link line. */
#include <stdio.h>
#include <string.h>

#include <bytes_handoff.h>

int main(void)
{
    bh_buf b;
    bh_bytes line;
    if (bh_buf_init(&b, 64) != BH_OK || bh_buf_append(&b, "hello\nrest", 10) != BH_OK)
        return 1;
    size_t nl = bh_buf_find(&b, '\n', 0);
    if (nl == BH_NPOS || bh_buf_split_prefix(&b, nl + 1, &line) != BH_OK)
        return 1;
    printf("core consumer ok: %.*s version=%s %s\n", (int)nl, (const char *)line.ptr,
           bh_version_string(), bh_err_name(-32));
    bh_bytes_release(&line);
    bh_buf_free(&b);
    return strcmp(bh_err_name(-32), "UV_EPIPE") != 0;
}
