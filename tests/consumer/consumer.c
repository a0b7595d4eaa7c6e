/* consumer.c - a one-file program built against the installed library, the
 * way a user would: split a line out of a bh_buf and print it. */
#include <stdio.h>
#include <string.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

int main(void)
{
    bh_buf b;
    bh_bytes line;
    bh_writeq_config cfg = bh_writeq_config_default();
    if (bh_buf_init(&b, 64) != BH_OK || bh_buf_append(&b, "hello\nrest", 10) != BH_OK)
        return 1;
    size_t nl = bh_buf_find(&b, '\n', 0);
    if (nl == BH_NPOS || bh_buf_split_prefix(&b, nl + 1, &line) != BH_OK)
        return 1;
    printf("consumer ok: %.*s version=%s max_items=%zu\n", (int)nl, (const char *)line.ptr,
           bh_version_string(), cfg.max_items);
    bh_bytes_release(&line);
    bh_buf_free(&b);
    return strcmp(bh_strerror(BH_ETOOLONG), "length limit exceeded") != 0;
}
