/* host_name.h - the host names the routing examples accept in their route
 * tables (sni_router --route NAME=..., http_router --route HOST=...):
 * lower-case letters, digits, '-' and '_', in dot-separated labels, no empty
 * label, at most max bytes. Pure function, any thread. */
#ifndef BH_TOOLS_HOST_NAME_H
#define BH_TOOLS_HOST_NAME_H

#include <stddef.h>

/* 1 when s[0..n) is such a name of 1..max bytes, else 0. */
int host_name_ok(const char *s, size_t n, size_t max);

#endif
