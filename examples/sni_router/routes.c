/* routes.c - sni_router's routing table (see routes.h). A linear scan: the
 * table holds a handful of entries configured on the command line, and a
 * lookup happens once per connection. */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>
#include <uv.h>

#include "cli.h"
#include "host_name.h"

void sni_table_init(sni_table *t) { memset(t, 0, sizeof *t); }

void sni_table_free(sni_table *t)
{
    bh_free(t->routes);
    bh_free(t->fallback);
    memset(t, 0, sizeof *t);
}

int sni_table_clone(sni_table *dst, const sni_table *src)
{
    sni_table_init(dst);
    dst->routes = bh_malloc((src->count ? src->count : 1) * sizeof *dst->routes);
    dst->fallback = src->fallback ? bh_malloc(sizeof *dst->fallback) : NULL;
    if (!dst->routes || (src->fallback && !dst->fallback)) {
        sni_table_free(dst);
        return -2;
    }
    dst->count = dst->cap = src->count;
    for (size_t i = 0; i < src->count; i++) {
        dst->routes[i] = src->routes[i];
        memset(&dst->routes[i].stats, 0, sizeof dst->routes[i].stats);
    }
    if (src->fallback) {
        *dst->fallback = *src->fallback;
        memset(&dst->fallback->stats, 0, sizeof dst->fallback->stats);
    }
    return 0;
}

static void add_route_stats(sni_route_stats *to, const sni_route_stats *from)
{
    to->accepted += from->accepted;
    to->active += from->active;
    to->failed += from->failed;
    to->bytes_up += from->bytes_up;
    to->bytes_down += from->bytes_down;
}

void sni_table_add_stats(sni_table *to, const sni_table *from)
{
    for (size_t i = 0; i < to->count && i < from->count; i++)
        add_route_stats(&to->routes[i].stats, &from->routes[i].stats);
    if (to->fallback && from->fallback)
        add_route_stats(&to->fallback->stats, &from->fallback->stats);
}

static int fill_addr(sni_route *r, const char *hostport, char *err, size_t err_len)
{
    int rc = strlen(hostport) >= sizeof r->addr_text ? UV_EINVAL
                                                       : cli_resolve_addr(hostport, &r->addr);
    if (rc == UV_EINVAL) {
        snprintf(err, err_len, "bad backend address '%s' (HOST:PORT, IPV4:PORT or [IPV6]:PORT)",
                 hostport);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve backend '%s': %s", hostport, uv_strerror(rc));
        return -1;
    }
    strcpy(r->addr_text, hostport);
    return 0;
}

static int alpn_ok(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof ((sni_route *)0)->alpn)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ',' || s[i] == '+')
            return 0;
    return 1;
}

int sni_table_add(sni_table *t, const char *spec, char *err, size_t err_len)
{
    const char *eq = strchr(spec, '=');
    if (!eq) {
        snprintf(err, err_len, "route '%s' is not NAME[+ALPN]=HOST:PORT", spec);
        return -1;
    }
    sni_route r;
    memset(&r, 0, sizeof r);
    const char *plus = memchr(spec, '+', (size_t)(eq - spec));
    size_t n = (size_t)((plus ? plus : eq) - spec);
    if (n >= sizeof r.name) {
        snprintf(err, err_len, "route name too long");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = spec[i];
        r.name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    r.wildcard = n > 2 && r.name[0] == '*' && r.name[1] == '.';
    const char *host = r.wildcard ? r.name + 2 : r.name;
    if (!host_name_ok(host, strlen(host), SNI_HOST_MAX)) {
        snprintf(err, err_len, "bad route name '%.*s' (host name or *.suffix)", (int)n, spec);
        return -1;
    }
    if (plus) {
        size_t an = (size_t)(eq - plus - 1);
        if (!alpn_ok(plus + 1, an)) {
            snprintf(err, err_len, "bad ALPN protocol in route '%s'", spec);
            return -1;
        }
        memcpy(r.alpn, plus + 1, an);
    }
    if (fill_addr(&r, eq + 1, err, err_len) != 0)
        return -1;
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->routes[i].name, r.name) == 0 && strcmp(t->routes[i].alpn, r.alpn) == 0) {
            snprintf(err, err_len, "route '%.*s' given twice", (int)(eq - spec), spec);
            return -1;
        }
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        sni_route *grown = bh_realloc(t->routes, cap * sizeof *grown);
        if (!grown)
            return -2;
        t->routes = grown;
        t->cap = cap;
    }
    t->routes[t->count++] = r;
    return 0;
}

int sni_table_set_default(sni_table *t, const char *hostport, char *err, size_t err_len)
{
    sni_route r;
    memset(&r, 0, sizeof r);
    strcpy(r.name, "default");
    if (fill_addr(&r, hostport, err, err_len) != 0)
        return -1;
    if (!t->fallback && !(t->fallback = bh_malloc(sizeof *t->fallback)))
        return -2;
    *t->fallback = r;
    return 0;
}

/* How well entry r matches: 0 not at all; otherwise exact names above every
 * wildcard, longer suffixes above shorter, an ALPN entry above a plain one. */
static size_t match_rank(const sni_route *r, const char *name, size_t n, const sni_hello *hello)
{
    if (r->alpn[0] && (!hello || !sni_hello_offers_alpn(hello, r->alpn)))
        return 0;
    size_t rank;
    if (!r->wildcard) {
        if (strcmp(r->name, name) != 0)
            return 0;
        rank = 2 * (SNI_HOST_MAX + 2);
    } else {
        size_t suffix = strlen(r->name) - 1; /* ".example.com" */
        if (n <= suffix || memcmp(name + n - suffix, r->name + 1, suffix) != 0)
            return 0;
        rank = 2 * suffix;
    }
    return rank + (r->alpn[0] ? 1 : 0);
}

sni_route *sni_table_lookup(const sni_table *t, const char *name, const sni_hello *hello)
{
    size_t n = strlen(name);
    sni_route *best = NULL;
    size_t best_rank = 0;
    for (size_t i = 0; i < t->count; i++) {
        size_t rank = match_rank(&t->routes[i], name, n, hello);
        if (rank > best_rank) {
            best = &t->routes[i];
            best_rank = rank;
        }
    }
    return best ? best : t->fallback;
}
