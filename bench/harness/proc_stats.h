/* proc_stats.h - CPU time, context switches and memory of another process,
 * read from /proc (Linux).
 *
 * CPU time comes from /proc/PID/task/TID/schedstat (nanoseconds on CPU,
 * exact, summed over all threads) rather than from rusage's 10 ms ticks;
 * context switches are summed over /proc/PID/task/TID/status; peak and current
 * RSS are VmHWM and VmRSS of /proc/PID/status. */
#ifndef BH_HARNESS_PROC_STATS_H
#define BH_HARNESS_PROC_STATS_H

#include <stdint.h>
#include <sys/types.h>

typedef struct proc_stats {
    uint64_t cpu_ns;      /* sum of schedstat run time over live threads */
    uint64_t vcsw;        /* voluntary_ctxt_switches, summed */
    uint64_t ivcsw;       /* nonvoluntary_ctxt_switches, summed */
    uint64_t hwm_kib;     /* VmHWM: peak resident set */
    uint64_t rss_kib;     /* VmRSS: current resident set */
    unsigned threads;     /* live threads seen */
} proc_stats;

/* Samples pid. Returns 0, or -1 when the process is gone or /proc is absent. */
int proc_stats_read(pid_t pid, proc_stats *out);

#endif
