/* test_error.c - bh_strerror / bh_err_name cover library and libuv codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <bytes_handoff.h>

static void every_library_code_has_a_distinct_message(void **state)
{
    (void)state;
    const int codes[] = {BH_OK,     BH_ENOMEM,   BH_ETOOLONG, BH_ERANGE, BH_EFULL,
                         BH_ECLOSED, BH_ECANCELED, BH_EINVAL,  BH_EIO};
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_non_null(bh_strerror(codes[i]));
        assert_string_not_equal(bh_strerror(codes[i]), "unknown error");
        assert_string_not_equal(bh_err_name(codes[i]), "UNKNOWN");
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(bh_strerror(codes[i]), bh_strerror(codes[j]));
    }
    assert_string_equal(bh_err_name(BH_ETOOLONG), "BH_ETOOLONG");
}

static void library_codes_do_not_collide_with_libuv_codes(void **state)
{
    (void)state;
    assert_true((int)BH_ENOMEM < (int)UV_EOF);
    assert_true((int)BH_EIO < (int)UV_EOF);
    assert_int_not_equal((int)BH_ENOMEM, (int)UV_ENOMEM);
}

static void libuv_codes_are_named_by_libuv(void **state)
{
    (void)state;
    assert_string_equal(bh_strerror(UV_EPIPE), uv_strerror(UV_EPIPE));
    assert_string_equal(bh_err_name(UV_ECONNRESET), "ECONNRESET");
    assert_string_equal(bh_err_name(UV_EOF), "EOF");
}

static void unknown_positive_code_is_unknown(void **state)
{
    (void)state;
    assert_string_equal(bh_strerror(12345), "unknown error");
    assert_string_equal(bh_err_name(12345), "UNKNOWN");
}

static void version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(bh_version(), BH_VERSION_HEX);
    assert_string_equal(bh_version_string(), "0.1.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_library_code_has_a_distinct_message),
        cmocka_unit_test(library_codes_do_not_collide_with_libuv_codes),
        cmocka_unit_test(libuv_codes_are_named_by_libuv),
        cmocka_unit_test(unknown_positive_code_is_unknown),
        cmocka_unit_test(version_matches_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
