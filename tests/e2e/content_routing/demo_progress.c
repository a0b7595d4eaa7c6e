/* demo_progress.c - the demo's live status line on a terminal: when stderr
 * is a tty, --progress-after-ms (default 1000) after the clients started and
 * then every PROGRESS_EVERY_MS, one line rewritten in place ('\r'):
 *
 *   demo: 5/8 connections done, 812.0 MiB sent, 1534.2 MiB/s
 *
 * (bytes the clients have written to the proxy; the rate since they
 * started), finished with a last update and a newline when the demo stops.
 * Nothing at all when stderr is not a terminal (tests, CI logs) or the demo
 * ends before the first update. Its timer is unreferenced: it never keeps
 * the loop alive. */
#include "demo_internal.h"

#include <stdio.h>
#include <unistd.h>

#define PROGRESS_EVERY_MS 250

static void print_status(demo *d)
{
    double s = (double)(uv_hrtime() - d->t_start) / 1e9;
    double mib = (double)d->bytes_sent / (1024.0 * 1024.0);
    fprintf(stderr, "\rdemo: %zu/%zu connections done, %.1f MiB sent, %.1f MiB/s   ",
            d->ndone < d->nclients ? d->ndone : d->nclients, d->nclients, mib,
            s > 0 ? mib / s : 0.0);
    fflush(stderr);
    d->progress_shown = 1;
}

static void on_progress(uv_timer_t *t) { print_status(t->data); }

void demo_progress_start(demo *d)
{
    if (!isatty(STDERR_FILENO) || uv_timer_init(&d->loop, &d->progress) != 0)
        return;
    d->progress.data = d;
    d->progress_on = 1;
    uv_unref((uv_handle_t *)&d->progress);
    uv_timer_start(&d->progress, on_progress, d->cfg->progress_after_ms, PROGRESS_EVERY_MS);
}

void demo_progress_finish(demo *d)
{
    if (!d->progress_on)
        return;
    d->progress_on = 0;
    uv_close((uv_handle_t *)&d->progress, NULL);
    if (d->progress_shown) {
        print_status(d);
        fputc('\n', stderr);
    }
}
