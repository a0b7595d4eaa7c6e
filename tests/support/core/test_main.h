/* test_main.h - the main() of every cmocka test program: ignores SIGPIPE
 * (a peer that goes away fails a write with EPIPE instead of killing the
 * test) and runs the listed tests (cmocka entries, e.g. test_alloc_checked)
 * as one group. */
#ifndef BH_TEST_MAIN_H
#define BH_TEST_MAIN_H

#include <signal.h>

#define TEST_MAIN(...)                                     \
    int main(void)                                         \
    {                                                      \
        const struct CMUnitTest tests[] = {__VA_ARGS__};   \
        signal(SIGPIPE, SIG_IGN);                          \
        return cmocka_run_group_tests(tests, NULL, NULL);  \
    }

#endif
