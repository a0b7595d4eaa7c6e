/* test_alloc.h - allocator hook for tests: counts allocations and frees,
 * tracks live blocks, and fails the Nth allocation on request. */
#ifndef BH_TEST_ALLOC_H
#define BH_TEST_ALLOC_H

#include <stddef.h>

typedef struct test_alloc_stats {
    size_t allocs;   /* successful malloc + realloc calls */
    size_t frees;    /* free calls with non-NULL pointers */
    size_t live;     /* blocks currently allocated */
    size_t failed;   /* injected failures */
    size_t attempts; /* malloc + realloc calls, failed or not */
    size_t live_bytes; /* usable bytes of the live blocks (malloc_usable_size) */
    size_t peak_bytes; /* highest live_bytes since install / test_alloc_reset_peak; a
                          realloc counts the old and the new block together, as a
                          moving realloc needs both for a moment */
    size_t max_request; /* largest size asked for by one malloc or realloc attempt */
    size_t requested_bytes; /* sizes asked for by every attempt, added up */
} test_alloc_stats;

/* Installs the counting allocator and resets the counters (after trimming
 * the calling thread's block cache, whose blocks came from the previous
 * hook). A test that checks `live` itself at its end trims the cache first
 * (test_alloc_finish() does): blocks readers gave back stay cached until
 * then. fail_at = 0
 * disables injection; fail_at = N fails the Nth attempt (1-based) only. */
void test_alloc_install(size_t fail_at);
/* Sets the failure point relative to the current attempt count: the next
 * `after + 1`th attempt fails (0 = the very next one). */
void test_alloc_fail_after(size_t after);
/* Makes every attempt from now on fail (1) or succeed (0). */
void test_alloc_fail_all(int on);
/* Makes every attempt for more than max bytes fail (0 = no limit, the
 * default after install): fuzzers keep huge requests from allocating. */
void test_alloc_limit_size(size_t max);
void test_alloc_stats_get(test_alloc_stats *out);
/* The counters as they are now (test_alloc_stats_get by value). */
test_alloc_stats test_alloc_stats_now(void);
/* Restarts peak_bytes from the current live_bytes. */
void test_alloc_reset_peak(void);
/* Restores the default allocator. */
void test_alloc_uninstall(void);
/* The end-of-test leak check: trims the calling thread's block cache, asserts
 * (cmocka) that every block allocated since test_alloc_install() has been
 * freed, then restores the default allocator. */
void test_alloc_finish(void);
/* cmocka setup for tests that run under the counting allocator: installs it
 * without failure injection. Always returns 0. */
int test_alloc_setup(void **state);
/* cmocka teardown pairing test_alloc_setup(): restores the default allocator
 * and asserts (cmocka) that no block allocated since the setup is still live.
 * Unlike test_alloc_finish() it does not trim the block cache first, so a
 * block parked there counts as live. Returns 0. */
int test_alloc_teardown(void **state);
/* cmocka teardown pairing test_alloc_setup(): the end-of-test leak check of
 * test_alloc_finish() (block cache trimmed first). A test that restored the
 * default allocator itself is checked as the counters stood at that point.
 * Returns 0. */
int test_alloc_finish_teardown(void **state);
/* 1 while the counting allocator is installed. */
int test_alloc_installed(void);

/* A cmocka test entry run under the counting allocator and ending with the
 * leak check (test_alloc_setup / test_alloc_finish_teardown). */
#define test_alloc_checked(f) cmocka_unit_test_setup_teardown(f, test_alloc_setup, \
                                                              test_alloc_finish_teardown)
/* The same for one case of a parameterised test: the entry is named `name`
 * (its specification) and runs f with *state == param (a pointer). */
#define test_alloc_checked_case(name, f, param) \
    {#name, f, test_alloc_setup, test_alloc_finish_teardown, (void *)(param)}

#endif
