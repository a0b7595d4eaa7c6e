/* stats.c - sni_router's --stats report: one line per route (the default
 * included) with its connections and bytes, open tunnels counted as far as
 * they got, then the rejections by kind, how tunnels ended and how often
 * (and how long, in ms) they waited on a slow destination, per direction:
 * up is client -> backend. */
#include "sni_router.h"

#include <inttypes.h>

static void print_route(const sni_router *r, const sni_route *rt, FILE *out)
{
    uint64_t up = rt->stats.bytes_up, down = rt->stats.bytes_down;
    sni_router_live_bytes(r, rt, &up, &down);
    fprintf(out,
            "stats route=%s%s%s backend=%s accepted=%" PRIu64 " active=%" PRIu64 " failed=%" PRIu64
            " bytes_up=%" PRIu64 " bytes_down=%" PRIu64 "\n",
            rt->name, rt->alpn[0] ? "+" : "", rt->alpn, rt->addr_text, rt->stats.accepted, rt->stats.active, rt->stats.failed, up,
            down);
}

void sni_router_print_stats(const sni_router *r, FILE *out)
{
    fprintf(out, "stats connections accepted=%" PRIu64 " open=%" PRIu64 "\n", r->accepted,
            r->live_count);
    for (size_t i = 0; i < r->table->count; i++)
        print_route(r, &r->table->routes[i], out);
    if (r->table->fallback)
        print_route(r, r->table->fallback, out);
    fprintf(out, "stats rejected");
    for (int k = 0; k < SNI_KIND_COUNT; k++)
        fprintf(out, " %s=%" PRIu64, sni_kind_name((sni_kind)k), r->kinds[k]);
    uint64_t waits[2] = {r->backpressure[0], r->backpressure[1]};
    uint64_t ms[2] = {r->backpressure_ms[0], r->backpressure_ms[1]};
    sni_router_live_backpressure(r, waits, ms);
    fprintf(out,
            "\nstats tunnels clean=%" PRIu64 " reset=%" PRIu64 " idle_timeout=%" PRIu64
            " other=%" PRIu64 " backpressure_up=%" PRIu64 " backpressure_down=%" PRIu64
            " backpressure_ms_up=%" PRIu64 " backpressure_ms_down=%" PRIu64 "\n",
            r->tunnel_clean, r->tunnel_reset, r->tunnel_idle, r->tunnel_other, waits[0],
            waits[1], ms[0], ms[1]);
    fflush(out);
}

void sni_router_add_counters(sni_router *sum, const sni_router *r)
{
    sum->accepted += r->accepted;
    sum->live_count += r->live_count;
    for (int k = 0; k < SNI_KIND_COUNT; k++)
        sum->kinds[k] += r->kinds[k];
    sum->tunnel_clean += r->tunnel_clean;
    sum->tunnel_reset += r->tunnel_reset;
    sum->tunnel_idle += r->tunnel_idle;
    sum->tunnel_other += r->tunnel_other;
    for (int d = 0; d < 2; d++) {
        sum->backpressure[d] += r->backpressure[d];
        sum->backpressure_ms[d] += r->backpressure_ms[d];
    }
}
