/* test_error.c - bh_strerror / bh_err_name name every library code and every
 * errno value from static tables; unknown codes anywhere in the int range
 * give the fixed strings; nothing allocates (the counting allocator checks).
 * Agreement with libuv's own names: uv/test_error_libuv.c. */
#define _GNU_SOURCE /* strerrorname_np: the platform's own errno names */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"

static const int lib_codes[] = {BH_OK,      BH_ENOMEM,    BH_ETOOLONG, BH_ERANGE, BH_EFULL,
                                BH_ECLOSED, BH_ECANCELED, BH_EINVAL,   BH_EIO};
#define N_LIB (sizeof lib_codes / sizeof lib_codes[0])

static void every_library_code_has_a_distinct_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_LIB; i++) {
        assert_string_not_equal(bh_strerror(lib_codes[i]), "unknown error");
        assert_string_not_equal(bh_err_name(lib_codes[i]), "UNKNOWN");
        for (size_t j = i + 1; j < N_LIB; j++)
            assert_string_not_equal(bh_strerror(lib_codes[i]), bh_strerror(lib_codes[j]));
    }
    assert_string_equal(bh_err_name(BH_ETOOLONG), "BH_ETOOLONG");
    assert_string_equal(bh_strerror(BH_OK), "success");
}

/* Every errno value the platform names is named too (negated, as libuv
 * reports it), also those libuv's map leaves out. */
static void every_negative_errno_is_named(void **state)
{
    (void)state;
    int named = 0;
    for (int e = 1; e < 4096; e++) {
        const char *sys = strerrorname_np(e);
        if (!sys)
            continue;
        named++;
        const char *name = bh_err_name(-e);
        assert_true(strncmp(name, "UV_E", 4) == 0);
        assert_string_not_equal(bh_strerror(-e), "unknown error");
    }
    assert_true(named > 100);
}

/* Anything outside the tables: fixed static strings, never NULL, the same
 * pointer every time (nothing is formatted or allocated per call). */
static void unknown_codes_across_the_int_range_are_unknown(void **state)
{
    (void)state;
    const char *unknown_msg = bh_strerror(INT_MIN);
    const char *unknown_name = bh_err_name(INT_MAX);
    assert_string_equal(unknown_msg, "unknown error");
    assert_string_equal(unknown_name, "UNKNOWN");
    long long step = 65521; /* prime: samples every residue class over the range */
    for (long long v = INT_MIN; v <= INT_MAX; v += step) {
        int code = (int)v;
        int known = (code >= -4095 && code <= 0);
        for (size_t i = 0; i < N_LIB; i++)
            known |= code == lib_codes[i];
        if (known)
            continue;
        assert_ptr_equal(bh_strerror(code), unknown_msg);
        assert_ptr_equal(bh_err_name(code), unknown_name);
    }
    for (int code = -4095; code <= 0; code++) {
        assert_non_null(bh_strerror(code));
        assert_ptr_equal(bh_err_name(code), bh_err_name(code));
    }
    assert_ptr_equal(bh_strerror(-4000), unknown_msg);
    assert_ptr_equal(bh_err_name(-4000), unknown_name);
    assert_ptr_equal(bh_strerror(12345), unknown_msg);
}

static void version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(bh_version(), BH_VERSION_HEX);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", BH_VERSION_MAJOR, BH_VERSION_MINOR, BH_VERSION_PATCH);
    assert_string_equal(bh_version_string(), want);
}

TEST_MAIN(test_alloc_checked(every_library_code_has_a_distinct_message),
          test_alloc_checked(every_negative_errno_is_named),
          test_alloc_checked(unknown_codes_across_the_int_range_are_unknown),
          test_alloc_checked(version_matches_header))
