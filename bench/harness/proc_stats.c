/* proc_stats.c - samples another process's CPU time, context switches and
 * memory from /proc (see proc_stats.h). */
#include "proc_stats.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Adds the value of every "key:\tN" line of a status file to the matching
 * counter; keys absent from the file leave their counters unchanged. */
static void add_status_fields(const char *path, uint64_t *vcsw, uint64_t *ivcsw, uint64_t *hwm,
                              uint64_t *rss)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    uint64_t v;
    while (fgets(line, sizeof line, f)) {
        if (vcsw && sscanf(line, "voluntary_ctxt_switches: %" SCNu64, &v) == 1)
            *vcsw += v;
        else if (ivcsw && sscanf(line, "nonvoluntary_ctxt_switches: %" SCNu64, &v) == 1)
            *ivcsw += v;
        else if (hwm && sscanf(line, "VmHWM: %" SCNu64, &v) == 1)
            *hwm = v;
        else if (rss && sscanf(line, "VmRSS: %" SCNu64, &v) == 1)
            *rss = v;
    }
    fclose(f);
}

int proc_stats_read(pid_t pid, proc_stats *out)
{
    char path[96];
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char tpath[320];
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(tpath, "r");
        if (!f)
            continue; /* the thread exited between readdir and fopen */
        uint64_t run_ns;
        if (fscanf(f, "%" SCNu64, &run_ns) == 1) {
            out->cpu_ns += run_ns;
            out->threads++;
        }
        fclose(f);
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/status", (int)pid, e->d_name);
        add_status_fields(tpath, &out->vcsw, &out->ivcsw, NULL, NULL);
    }
    closedir(d);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    add_status_fields(path, NULL, NULL, &out->hwm_kib, &out->rss_kib);
    return out->threads ? 0 : -1;
}
