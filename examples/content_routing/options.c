/* options.c - the content_routing proxy's command-line options, parsed into
 * a cr_proxy_config (see CR_PROXY_OPTIONS in content_routing.h). */
#include "content_routing.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

/* "NAME=ADDR" appended to pc's destinations. */
static void add_dest(cr_proxy_config *pc, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) > CR_MAX_NAME)
        cli_die("--dest: '%s' is not NAME=ADDR with a name of 1-%d characters", spec,
                CR_MAX_NAME);
    if (pc->ndests == CR_MAX_DESTS)
        cli_die("--dest: at most %d destinations", CR_MAX_DESTS);
    cr_dest *d = &pc->dests[pc->ndests];
    memcpy(d->name, spec, (size_t)(eq - spec));
    d->name[eq - spec] = '\0';
    cli_addr("--dest", eq + 1, &d->addr);
    pc->ndests++;
}

int cr_proxy_option(int c, const char *arg, cr_proxy_config *pc)
{
    switch (c) {
    case CR_OPT_DEST:
        add_dest(pc, arg);
        return 1;
    case CR_OPT_UPSTREAM: {
        if (pc->ndests == CR_MAX_DESTS)
            cli_die("--upstream: at most %d destinations", CR_MAX_DESTS);
        cr_dest *d = &pc->dests[pc->ndests];
        snprintf(d->name, sizeof d->name, "upstream");
        cli_addr("--upstream", arg, &d->addr);
        pc->default_dest = (int)pc->ndests++;
        return 1;
    }
    case CR_OPT_LINE_FRAMES:
        pc->line_frames = 1;
        return 1;
    case CR_OPT_VERBOSE:
        pc->verbose = 1;
        return 1;
    case CR_OPT_READ_RESERVE:
        pc->read_reserve = (size_t)cli_size("--read-reserve", arg, 0, CLI_GIB);
        return 1;
    case CR_OPT_WRITE_BUDGET:
        pc->write_budget = (size_t)cli_size("--write-budget", arg, 0, 64 * CLI_GIB);
        return 1;
    case CR_OPT_MAX_LINE:
        pc->max_line = (size_t)cli_size("--max-line", arg, 0, CLI_GIB);
        return 1;
    case CR_OPT_MAX_FRAME:
        pc->max_frame = (size_t)cli_size("--max-frame", arg, 0, CLI_GIB);
        return 1;
    case CR_OPT_UPSTREAM_SNDBUF:
        pc->upstream_sndbuf = (int)cli_size("--upstream-sndbuf", arg, 0, CLI_GIB);
        return 1;
    case CR_OPT_HEADER_TIMEOUT:
        pc->header_timeout_ms = cli_size("--header-timeout-ms", arg, 0, UINT32_MAX);
        return 1;
    case CR_OPT_IDLE_TIMEOUT:
        pc->idle_timeout_ms = cli_size("--idle-timeout-ms", arg, 0, UINT32_MAX);
        return 1;
    default:
        return 0;
    }
}
