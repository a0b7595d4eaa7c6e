// bench_main.cc - registers the C workloads (bench_micro.h) with
// google-benchmark. This file is the only C++ in the suite and holds no
// workload logic: setup, the timed loop, teardown, counters, errors.
//
// The process exits nonzero when any benchmark reported an error, so a ctest
// smoke run fails on a correctness check inside a workload.
#include <benchmark/benchmark.h>

#include "bench_micro.h"

namespace {

int g_errors = 0;

void fail(benchmark::State &state, const char *msg)
{
    state.SkipWithError(msg ? msg : "workload failed");
    ++g_errors;
}

void run_workload(benchmark::State &state, const bm_workload *w)
{
    bm_info info = {0, 0};
    const char *err = nullptr;
    int64_t arg = w->args ? state.range(0) : 0;
    void *ctx = w->setup(arg, &info, &err);
    if (!ctx) {
        fail(state, err);
        return;
    }
    bool ok = true;
    for (auto _ : state) {
        if (w->iterate(ctx, &err) != 0) {
            ok = false;
            break;
        }
    }
    if (!ok) {
        const char *teardown_err = nullptr;
        w->teardown(ctx, &teardown_err);
        fail(state, err);
        return;
    }
    if (w->teardown(ctx, &err) != 0) {
        fail(state, err);
        return;
    }
    int64_t iters = static_cast<int64_t>(state.iterations());
    state.SetBytesProcessed(iters * static_cast<int64_t>(info.bytes_per_iter));
    state.SetItemsProcessed(iters * static_cast<int64_t>(info.items_per_iter));
}

void register_all(const bm_workload *table, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const bm_workload *w = &table[i];
        benchmark::internal::Benchmark *b =
            benchmark::RegisterBenchmark(w->name, run_workload, w);
        for (size_t a = 0; a < w->nargs; a++)
            b->Arg(w->args[a]);
        if (w->real_time)
            b->UseRealTime();
    }
}

} // namespace

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    register_all(bm_read_workloads, bm_read_workloads_count);
    register_all(bm_split_workloads, bm_split_workloads_count);
    register_all(bm_write_workloads, bm_write_workloads_count);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return g_errors == 0 ? 0 : 1;
}
