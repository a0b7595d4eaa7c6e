/* routes.c - http_router's routing table (see routes.h). A linear scan: a
 * handful of entries from the command line, one lookup per request. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include <bytes_handoff.h>

#include "cli.h"
#include "host_name.h"

void hr_table_init(hr_table *t) { memset(t, 0, sizeof *t); }

void hr_table_free(hr_table *t)
{
    bh_free(t->routes);
    bh_free(t->fallback);
    memset(t, 0, sizeof *t);
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int fill_addr(hr_route *r, const char *hostport, char *err, size_t err_len)
{
    if (strlen(hostport) >= sizeof r->addr_text || cli_parse_addr(hostport, &r->addr) != 0) {
        snprintf(err, err_len, "bad upstream address '%s' (IPV4:PORT or [IPV6]:PORT)", hostport);
        return -1;
    }
    strcpy(r->addr_text, hostport);
    return 0;
}

int hr_table_add(hr_table *t, const char *spec, char *err, size_t err_len)
{
    const char *eq = strrchr(spec, '=');
    if (!eq) {
        snprintf(err, err_len, "route '%s' is not HOST[/PREFIX]=ADDR:PORT", spec);
        return -1;
    }
    hr_route r;
    memset(&r, 0, sizeof r);
    const char *slash = memchr(spec, '/', (size_t)(eq - spec));
    size_t n = (size_t)((slash ? slash : eq) - spec);
    size_t pn = slash ? (size_t)(eq - slash) : 1;
    if (n >= sizeof r.host || pn > HR_PREFIX_MAX) {
        snprintf(err, err_len, "route host or prefix too long in '%s'", spec);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r.host[i] = lower(spec[i]);
    r.wildcard = n > 2 && r.host[0] == '*' && r.host[1] == '.';
    const char *host = r.wildcard ? r.host + 2 : r.host;
    if (!host_name_ok(host, strlen(host), HR_HOST_MAX)) {
        snprintf(err, err_len, "bad route host '%.*s' (host name or *.suffix)", (int)n, spec);
        return -1;
    }
    memcpy(r.prefix, slash ? slash : "/", pn);
    r.prefix_len = pn;
    for (size_t i = 0; i < pn; i++) {
        if ((unsigned char)r.prefix[i] <= 0x20 || (unsigned char)r.prefix[i] >= 0x7f) {
            snprintf(err, err_len, "bad route prefix in '%s'", spec);
            return -1;
        }
    }
    if (fill_addr(&r, eq + 1, err, err_len) != 0)
        return -1;
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->routes[i].host, r.host) == 0 && strcmp(t->routes[i].prefix, r.prefix) == 0) {
            snprintf(err, err_len, "route '%.*s' given twice", (int)(eq - spec), spec);
            return -1;
        }
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        hr_route *grown = bh_realloc(t->routes, cap * sizeof *grown);
        if (!grown)
            return -2;
        t->routes = grown;
        t->cap = cap;
    }
    r.index = t->count;
    t->routes[t->count++] = r;
    if (t->fallback)
        t->fallback->index = t->count;
    return 0;
}

int hr_table_set_default(hr_table *t, const char *hostport, char *err, size_t err_len)
{
    hr_route r;
    memset(&r, 0, sizeof r);
    strcpy(r.host, "default");
    strcpy(r.prefix, "/");
    r.prefix_len = 1;
    if (fill_addr(&r, hostport, err, err_len) != 0)
        return -1;
    if (!t->fallback && !(t->fallback = bh_malloc(sizeof *t->fallback)))
        return -2;
    r.index = t->count;
    *t->fallback = r;
    return 0;
}

size_t hr_table_size(const hr_table *t) { return t->count + (t->fallback ? 1 : 0); }

/* How well r's host matches host[0..n): 0 not at all, exact above every
 * wildcard, longer suffixes above shorter. */
static size_t host_rank(const hr_route *r, const char *host, size_t n)
{
    if (!r->wildcard) {
        size_t rn = strlen(r->host);
        if (rn != n)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (lower(host[i]) != r->host[i])
                return 0;
        return HR_HOST_MAX + 3;
    }
    size_t suffix = strlen(r->host) - 1; /* ".example.com" */
    if (n <= suffix)
        return 0;
    for (size_t i = 0; i < suffix; i++)
        if (lower(host[n - suffix + i]) != r->host[1 + i])
            return 0;
    return suffix;
}

const hr_route *hr_table_lookup(const hr_table *t, const char *host, size_t hn,
                                const char *path, size_t pn)
{
    const hr_route *best = NULL;
    size_t best_host = 0, best_prefix = 0;
    for (size_t i = 0; i < t->count; i++) {
        const hr_route *r = &t->routes[i];
        size_t h = host_rank(r, host, hn);
        if (h == 0 || r->prefix_len > pn || memcmp(path, r->prefix, r->prefix_len) != 0)
            continue;
        if (h > best_host || (h == best_host && r->prefix_len > best_prefix)) {
            best = r;
            best_host = h;
            best_prefix = r->prefix_len;
        }
    }
    return best ? best : t->fallback;
}
