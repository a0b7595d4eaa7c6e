/* write_workloads.c - write families (pending the write queue). */
#include "bench_micro.h"

const bm_workload bm_write_workloads[] = {{0}};
const size_t bm_write_workloads_count = 0;
