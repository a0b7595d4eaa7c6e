/* routes.h - sni_router's routing table: exact host names and "*.suffix"
 * wildcards mapped to backend addresses, plus an optional default, each with
 * its own counters for --stats.
 *
 * Lookup rules: names compare case-insensitively (the parser lower-cases the
 * SNI, the table lower-cases its names); an exact name wins over any wildcard;
 * among wildcards the longest suffix wins; "*.example.com" matches
 * "a.example.com" and "a.b.example.com" but not "example.com". An entry
 * "NAME+ALPN" (e.g. "alpha.example+h2") matches only hellos that offer that
 * ALPN protocol and wins over the same NAME without one. The table is built
 * once at start-up and read-only afterwards, but for its counters: each
 * worker thread routes with its own copy (sni_table_clone()), whose counters
 * are summed at exit (sni_table_add_stats()). */
#ifndef SNI_ROUTES_H
#define SNI_ROUTES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hello.h"

typedef struct sni_route_stats {
    uint64_t accepted;  /* connections routed to this entry */
    uint64_t active;    /* of those, still open */
    uint64_t failed;    /* backend connect failed */
    uint64_t bytes_up;  /* client -> backend, ClientHello included */
    uint64_t bytes_down;/* backend -> client */
} sni_route_stats;

typedef struct sni_route {
    char name[SNI_HOST_MAX + 3]; /* as configured, lower-cased ("*.b.test"); "default" */
    int wildcard;                /* name starts with "*." */
    char alpn[32];               /* required ALPN protocol, "" for any */
    struct sockaddr_storage addr;
    char addr_text[64];          /* the HOST:PORT given */
    sni_route_stats stats;
} sni_route;

typedef struct sni_table {
    sni_route *routes;
    size_t count;
    size_t cap;
    sni_route *fallback; /* --default, or NULL */
} sni_table;

void sni_table_init(sni_table *t);
void sni_table_free(sni_table *t);

/* dst becomes a copy of src with its counters at zero (its own memory; free
 * it with sni_table_free()). Returns 0 or -2 when out of memory. */
int sni_table_clone(sni_table *dst, const sni_table *src);

/* Adds the counters of from (a clone of to, or of the same table) to to's. */
void sni_table_add_stats(sni_table *to, const sni_table *from);

/* Adds "NAME[+ALPN]=HOST:PORT" (NAME a host name or "*.suffix"; ALPN a
 * protocol name such as h2; HOST:PORT as IPV4:PORT or [IPV6]:PORT, or a host
 * name resolved now with getaddrinfo(3): cli_resolve_addr()). Returns
 * 0, -1 for a malformed or duplicate entry (message in err), or -2 when out
 * of memory. */
int sni_table_add(sni_table *t, const char *spec, char *err, size_t err_len);

/* Sets the route for names no entry matches (and hellos without SNI). */
int sni_table_set_default(sni_table *t, const char *hostport, char *err, size_t err_len);

/* The entry for host name `name` (already lower-case) and the ALPN
 * protocols hello offers (hello NULL: entries with an ALPN never match),
 * else the default (which may be NULL). */
sni_route *sni_table_lookup(const sni_table *t, const char *name, const sni_hello *hello);

#endif
