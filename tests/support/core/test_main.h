/* test_main.h - the main() of every cmocka test program: ignores SIGPIPE
 * (a peer that goes away fails a write with EPIPE instead of killing the
 * test) and runs the listed tests (cmocka entries, e.g. test_alloc_checked)
 * as one group.
 *
 * BH_TEST_FILTER (environment, optional): a comma-separated list of
 * fnmatch(3) patterns; only the tests whose name matches one of them run (a
 * program without a match runs none and passes). scripts/
 * check-tests-can-fail.sh uses it to run only the tests meant to catch a
 * fault. */
#ifndef BH_TEST_MAIN_H
#define BH_TEST_MAIN_H

#include <fnmatch.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Whether name matches one pattern of the comma-separated list filter. */
static int bh_test_filter_match(const char *filter, const char *name)
{
    char pat[256];
    while (*filter) {
        size_t n = strcspn(filter, ",");
        if (n > 0 && n < sizeof pat) {
            memcpy(pat, filter, n);
            pat[n] = '\0';
            if (fnmatch(pat, name, 0) == 0)
                return 1;
        }
        filter += n + (filter[n] == ',');
    }
    return 0;
}

/* Runs the tests of tests[0..n) that BH_TEST_FILTER selects (all without
 * it), moving them to the front of the array. */
static int bh_test_main_run(struct CMUnitTest *tests, size_t n)
{
    const char *filter = getenv("BH_TEST_FILTER");
    size_t kept = n;
    if (filter && *filter) {
        kept = 0;
        for (size_t i = 0; i < n; i++)
            if (bh_test_filter_match(filter, tests[i].name))
                tests[kept++] = tests[i];
        if (kept == 0)
            return 0;
    }
    return _cmocka_run_group_tests("tests", tests, kept, NULL, NULL);
}

#define TEST_MAIN(...)                                          \
    int main(void)                                              \
    {                                                           \
        struct CMUnitTest tests[] = {__VA_ARGS__};              \
        signal(SIGPIPE, SIG_IGN);                               \
        return bh_test_main_run(tests, sizeof tests / sizeof *tests); \
    }

#endif
