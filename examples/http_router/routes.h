/* routes.h - http_router's routing table: "HOST[/PREFIX]=ADDR:PORT" entries
 * and an optional default. HOST is an exact name (compared
 * case-insensitively) or "*.suffix" (any name ending in ".suffix", not the
 * suffix itself). Among entries whose host matches, an exact host wins over
 * wildcards and a longer wildcard over a shorter one; among those, the
 * longest PREFIX the request path starts with wins (no PREFIX: "/", every
 * path). Built once at start-up, read-only afterwards (shared by workers). */
#ifndef HTTP_ROUTER_ROUTES_H
#define HTTP_ROUTER_ROUTES_H

#include <stddef.h>
#include <sys/socket.h>

#define HR_HOST_MAX 253
#define HR_PREFIX_MAX 256

typedef struct hr_route {
    char host[HR_HOST_MAX + 3];    /* lower-cased, "*.b.test" for a wildcard */
    int wildcard;
    char prefix[HR_PREFIX_MAX + 1]; /* "/" when none was given */
    size_t prefix_len;
    struct sockaddr_storage addr;
    char addr_text[64];             /* the ADDR:PORT given */
    size_t index;                   /* position; the default is last */
} hr_route;

typedef struct hr_table {
    hr_route *routes;
    size_t count, cap;
    hr_route *fallback; /* --default or NULL; index == count */
} hr_table;

void hr_table_init(hr_table *t);
void hr_table_free(hr_table *t);

/* Adds "HOST[/PREFIX]=ADDR:PORT". Returns 0, -1 (malformed or duplicate;
 * message in err) or -2 (out of memory). */
int hr_table_add(hr_table *t, const char *spec, char *err, size_t err_len);

/* Sets the route of requests no entry matches. Returns as hr_table_add(). */
int hr_table_set_default(hr_table *t, const char *hostport, char *err, size_t err_len);

/* Number of routes including the default (pool arrays are this long). */
size_t hr_table_size(const hr_table *t);

/* The route for host name host[0..hn) (any case, no port) and request path
 * path[0..pn), else the default (NULL when there is none). */
const hr_route *hr_table_lookup(const hr_table *t, const char *host, size_t hn,
                                const char *path, size_t pn);

#endif
