/* demo_report.c - the content_routing demo's verification and summary:
 * pairs every good client with its sink's record, checks the proxy's, the
 * sinks' and the allocator's counters and prints the result (see demo.c). */
#include "demo_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- verification and summary -------------------------------------------- */

/* Pairs a good client with one unmatched record of its destination's sink. */
static int match_sink(demo *d, client *c)
{
    size_t n;
    cr_sink_record *r = cr_sink_records(d->sinks[c->dest], &n);
    for (size_t i = 0; i < n; i++) {
        if (r[i].matched || r[i].bytes != c->len || r[i].hash != c->expect_hash)
            continue;
        if (r[i].frames != c->expect_frames || r[i].tunnel_bytes != c->expect_tunnel ||
            !r[i].route_ok || !r[i].parse_ok)
            continue;
        r[i].matched = 1;
        return 1;
    }
    return 0;
}

/* Sums what the proxy and the sinks report about out-of-memory endings and
 * completion tickets. */
static void collect(demo *d, uint64_t *enomem, cr_tickets *t)
{
    *enomem = d->pst.enomem;
    *t = d->pst.tickets;
    for (size_t i = 0; i < d->ndests && !d->cfg->external; i++) {
        cr_tickets st;
        cr_sink_tickets(d->sinks[i], &st);
        t->issued += st.issued;
        t->completed += st.completed;
        t->dupes += st.dupes;
        t->lost += st.lost;
        *enomem += cr_sink_enomem(d->sinks[i]);
    }
    for (size_t i = 0; i < d->nclients; i++)
        *enomem += (uint64_t)d->clients[i].enomem;
}

int report(demo *d)
{
    const cr_demo_config *cfg = d->cfg;
    double secs = (double)(d->t_end > d->t_start ? d->t_end - d->t_start : 1) / 1e9;
    size_t count[6] = {0}, handled[6] = {0};
    uint64_t dconns[MAX_DEMO_DESTS] = {0}, dok[MAX_DEMO_DESTS] = {0};
    uint64_t dframes[MAX_DEMO_DESTS] = {0}, dbytes[MAX_DEMO_DESTS] = {0};
    int failed = d->timed_out;
    int injected = g_fa.failed > 0;
    uint64_t enomem;
    cr_tickets tk;
    collect(d, &enomem, &tk);
    size_t failed_clean = 0, wrong = 0;

    for (size_t i = 0; i < d->nclients; i++) {
        client *c = &d->clients[i];
        const char *why = NULL;
        char expected[128];
        expected[0] = '\0';
        count[c->kind]++;
        if (c->kind == CK_GOOD) {
            c->sink_ok = c->reply_ok && (cfg->external || match_sink(d, c));
            /* Earlier rounds (--duration-s) verified; the last one decides. */
            uint64_t before = c->rounds - (c->reply_ok ? 1 : 0);
            uint64_t ok = before + (c->sink_ok ? 1 : 0);
            dconns[c->dest] += before + 1;
            dok[c->dest] += ok;
            dframes[c->dest] += c->expect_frames * ok;
            dbytes[c->dest] += (uint64_t)c->len * ok;
            if (c->sink_ok)
                handled[c->kind]++;
            else
                why = c->failure     ? c->failure
                      : !c->reply_ok ? "reply missing or wrong"
                                     : "no matching stream at the sink";
        } else if (faulty_disconnect(c)) {
            if (c->done && !c->failure)
                handled[c->kind]++;
            else
                why = c->failure ? c->failure : "not done";
        } else {
            if (c->reply_ok) {
                handled[c->kind]++;
            } else {
                why = c->failure ? c->failure : "no ERR reply";
                snprintf(expected, sizeof expected, " (expected \"%.*s\\n\")",
                         (int)strlen(c->expect_reply) - 1, c->expect_reply);
            }
        }
        if (!why)
            continue;
        const char *dest = c->kind == CK_GOOD ? dest_names[c->dest] : NULL;
        if (c->wrong) {
            wrong++;
            failed = 1;
            fprintf(stderr, "client %zu (%s%s%s): WRONG BYTES in the reply: %s%s\n", c->id,
                    kind_names[c->kind], dest ? ", " : "", dest ? dest : "", why, expected);
        } else if (injected && enomem > 0) {
            failed_clean++;
            fprintf(stderr,
                    "client %zu (%s%s%s): connection failed after the injected allocation "
                    "failure: %s\n",
                    c->id, kind_names[c->kind], dest ? ", " : "", dest ? dest : "", why);
        } else {
            failed = 1;
            fprintf(stderr, "client %zu (%s%s%s): %s%s\n", c->id, kind_names[c->kind],
                    dest ? ", " : "", dest ? dest : "", why, expected);
        }
    }
    /* One failed allocation belongs to one connection's buffer or queue. */
    if (failed_clean > enomem) {
        failed = 1;
        fprintf(stderr, "demo: %zu connections failed but only %" PRIu64 " reported BH_ENOMEM\n",
                failed_clean, enomem);
    }
    if (enomem > 0 && !injected) {
        failed = 1;
        fprintf(stderr, "demo: BH_ENOMEM reported without an injected failure\n");
    }
    int tickets_ok = tk.issued == tk.completed && tk.dupes == 0 && tk.lost == 0;
    if (!tickets_ok)
        failed = 1;
    /* Blocks the readers gave back to this thread's cache are not leaks. */
    bh_thread_cache_trim();
    int alloc_ok = !d->fa_installed || g_fa.live == 0;
    if (!alloc_ok)
        failed = 1;

    size_t good = count[CK_GOOD];
    size_t rejected_expected = count[CK_BAD_ROUTE] + count[CK_LONG_HEADER] + count[CK_LONG_FRAME];
    size_t aborted_expected = count[CK_MID_FRAME] + count[CK_MID_TUNNEL];
    const struct cr_proxy_stats *ps = &d->pst;
    /* Sessions are counted as they are freed, after the quiesce wait. */
    int proxy_ok = ps->live == 0 && ps->accepted == d->nclients && ps->completed == good &&
                   ps->rejected == rejected_expected && ps->aborted == aborted_expected &&
                   ps->peak_queued <= cfg->proxy.write_budget;
    if (injected) /* the failed connections' sessions may have ended any way */
        proxy_ok = ps->live == 0 && ps->accepted == d->nclients &&
                   ps->completed + ps->rejected + ps->aborted == ps->accepted &&
                   ps->peak_queued <= cfg->proxy.write_budget;
    if (cfg->external)
        proxy_ok = 1;
    if (!proxy_ok)
        failed = 1;

    uint64_t sink_aborted = 0;
    size_t unmatched = 0;
    for (size_t i = 0; i < d->ndests && !cfg->external; i++) {
        size_t n;
        cr_sink_record *r = cr_sink_records(d->sinks[i], &n);
        for (size_t j = 0; j < n; j++) {
            if (r[j].matched)
                continue;
            unmatched++;
            if (cfg->proxy.verbose)
                fprintf(stderr,
                        "sink %s: stream not matched: %" PRIu64 " bytes, %" PRIu64
                        " frames, %" PRIu64 " tunnel bytes, route %s, %s\n",
                        dest_names[i], r[j].bytes, r[j].frames, r[j].tunnel_bytes,
                        r[j].route_ok ? "ok" : "wrong",
                        r[j].parse_ok ? "well formed" : "truncated");
        }
        sink_aborted += cr_sink_aborted(d->sinks[i]);
    }

    printf("content_routing demo: %zu connections (%zu good), %zu frames x %zu B "
           "+ %zu B tunnel "
           "each, write size %zu B, read reserve %zu B, write budget %zu B, seed "
           "%" PRIu64 "\n",
           d->nclients, good, cfg->frames, cfg->frame_bytes, cfg->tunnel_bytes, cfg->write_size,
           cfg->proxy.read_reserve, cfg->proxy.write_budget, cfg->seed);
    printf("\n%-8s %11s %9s %10s %14s %10s  %s\n", "dest", "connections", "verified", "frames",
           "bytes", "MiB/s", "checksum");
    uint64_t tconns = 0, tok = 0, tframes = 0, tbytes = 0;
    for (size_t i = 0; i < d->ndests; i++) {
        char ver[48];
        snprintf(ver, sizeof ver, "%" PRIu64 "/%" PRIu64, dok[i], dconns[i]);
        printf("%-8s %11" PRIu64 " %9s %10" PRIu64 " %14" PRIu64 " %10.1f  %s\n", dest_names[i],
               dconns[i], ver, dframes[i], dbytes[i], (double)dbytes[i] / (1024.0 * 1024.0) / secs,
               dok[i] == dconns[i] ? "OK" : "FAIL");
        tconns += dconns[i];
        tok += dok[i];
        tframes += dframes[i];
        tbytes += dbytes[i];
    }
    char ver[48];
    snprintf(ver, sizeof ver, "%" PRIu64 "/%" PRIu64, tok, tconns);
    printf("%-8s %11" PRIu64 " %9s %10" PRIu64 " %14" PRIu64 " %10.1f  %s\n\n", "total", tconns,
           ver, tframes, tbytes, (double)tbytes / (1024.0 * 1024.0) / secs,
           tok == tconns ? "OK" : "FAIL");
    if (cfg->duration_s)
        printf("soak:    %zu concurrent clients reconnecting for %u s: %" PRIu64
               " connections verified, %" PRIu64 " bytes, %.1f MiB/s\n",
               good, cfg->duration_s, tok, tbytes, (double)tbytes / (1024.0 * 1024.0) / secs);
    printf("faults:  mid-frame %zu/%zu, mid-tunnel %zu/%zu closed by the client; "
           "bad-route "
           "%zu/%zu, long-header %zu/%zu, long-frame %zu/%zu answered with ERR\n",
           handled[CK_MID_FRAME], count[CK_MID_FRAME], handled[CK_MID_TUNNEL], count[CK_MID_TUNNEL],
           handled[CK_BAD_ROUTE], count[CK_BAD_ROUTE], handled[CK_LONG_HEADER],
           count[CK_LONG_HEADER], handled[CK_LONG_FRAME], count[CK_LONG_FRAME]);
    if (cfg->external)
        printf("proxy:   external at port %d; verified through the forwarded sink "
               "replies\n",
               cli_addr_port(&d->proxy_addr));
    else
        printf("proxy:   sessions %" PRIu64 " accepted, %" PRIu64
               " completed (expected %zu), %" PRIu64 " rejected (expected %zu), %" PRIu64
               " aborted (expected %zu), %" PRIu64 " live; %" PRIu64 " frames routed, %" PRIu64
               " bytes up, %" PRIu64 " bytes down\n",
               ps->accepted, ps->completed, good, ps->rejected, rejected_expected, ps->aborted,
               aborted_expected, ps->live, ps->frames, ps->bytes_up, ps->bytes_down);
    if (!cfg->external) {
        printf("         backpressure: %" PRIu64 " read pauses on a full queue, peak %zu B queued "
               "on one upstream (budget %zu B)\n",
               ps->pauses, ps->peak_queued, cfg->proxy.write_budget);
        printf("sinks:   %" PRIu64 " upstream connections reset by the proxy, %zu streams not "
               "matched to a good client\n",
               sink_aborted, unmatched);
        printf("tickets: %" PRIu64 " issued, %" PRIu64 " completed once, %" PRIu64
               " completed twice, %" PRIu64 " never completed%s\n",
               tk.issued, tk.completed, tk.dupes, tk.lost, tickets_ok ? "" : "  FAIL");
    }
    if (d->fa_installed) {
        printf("alloc:   %zu library allocation attempts reached, %zu blocks live at exit%s\n",
               g_fa.attempts, g_fa.live, alloc_ok ? "" : "  FAIL (leak)");
        if (cfg->fail_alloc && injected)
            printf("alloc:   injected failure at attempt %zu (%s of %zu B); %" PRIu64
                   " BH_ENOMEM endings reported, %zu connections failed cleanly\n",
                   cfg->fail_alloc, g_fa.failed_fn, g_fa.failed_size, enomem, failed_clean);
        else if (cfg->fail_alloc)
            printf("alloc:   --fail-alloc %zu not reached\n", cfg->fail_alloc);
    }
    printf("elapsed: %.3f s\n", secs);
    int result = 0;
    if (failed) {
        printf("RESULT: FAILED%s%s\n", d->timed_out ? " (timeout)" : "",
               wrong ? " (wrong bytes)" : "");
        result = 1;
    } else if (failed_clean > 0) {
        printf("RESULT: failed cleanly: %zu connection(s) failed with BH_ENOMEM, every other "
               "connection verified, no wrong byte, no leak, every ticket completed once\n",
               failed_clean);
        result = CR_DEMO_FAILED_CLEANLY;
    } else {
        printf("RESULT: all checksums OK, all faults handled\n");
    }
    fflush(stdout);
    return result;
}

