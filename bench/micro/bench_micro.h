/* bench_micro.h - the table of C workloads that bench_main.cc registers with
 * google-benchmark.
 *
 * A workload is three C functions: setup builds a context (buffers, corpus,
 * event loop, threads) and says how many bytes and items one iteration
 * processes; iterate runs one timed iteration and checks its own result;
 * teardown frees the context and runs the checks that need everything to
 * have finished (for example bytes received by a drain thread). Any failure
 * returns nonzero with *err pointing at a static message, which the shim
 * reports with SkipWithError. Everything runs on the benchmark thread. */
#ifndef BH_BENCH_MICRO_H
#define BH_BENCH_MICRO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Work done by one iteration, for SetBytesProcessed / SetItemsProcessed. */
typedef struct bm_info {
    uint64_t bytes_per_iter;
    uint64_t items_per_iter;
} bm_info;

typedef struct bm_workload {
    const char *name;     /* reported name, e.g. "read_owned_lines/handoff_buffer" */
    const int64_t *args;  /* one registration per argument; NULL: no argument */
    size_t nargs;
    int real_time;        /* 1: report wall time (other threads do part of the work) */
    /* Returns the context, or NULL with *err set. arg is 0 without args. */
    void *(*setup)(int64_t arg, bm_info *info, const char **err);
    /* One timed iteration: 0, or nonzero with *err set. */
    int (*iterate)(void *ctx, const char **err);
    /* Frees ctx (always); 0, or nonzero with *err set by a final check. */
    int (*teardown)(void *ctx, const char **err);
} bm_workload;

/* Families defined by read_workloads.c, split_workloads.c, write_workloads.c. */
extern const bm_workload bm_read_workloads[];
extern const size_t bm_read_workloads_count;
extern const bm_workload bm_split_workloads[];
extern const size_t bm_split_workloads_count;
extern const bm_workload bm_write_workloads[];
extern const size_t bm_write_workloads_count;

#ifdef __cplusplus
}
#endif

#endif
