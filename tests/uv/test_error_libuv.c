/* test_error_libuv.c - the library's codes agree with libuv's: no library
 * code collides with one of libuv's, and every libuv code is named (with the
 * UV_ prefix) and described exactly as libuv does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>
#include <uv.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"

static const int lib_codes[] = {BH_ENOMEM, BH_ETOOLONG, BH_ERANGE, BH_EFULL,
                                BH_ECLOSED, BH_ECANCELED, BH_EINVAL, BH_EIO};
#define N_LIB (sizeof lib_codes / sizeof lib_codes[0])

static void library_codes_do_not_collide_with_libuv_codes(void **state)
{
    (void)state;
    /* libuv's codes lie in [UV_EOF, -1]: errno values and fixed codes from
     * -3000 (UV_EAI_*) down to -4095 (UV_EOF). */
    for (size_t i = 0; i < N_LIB; i++)
        assert_true(lib_codes[i] < UV_EOF);
}

/* Every code of libuv's own map: same message as uv_strerror(), and the
 * name uv_err_name() gives with the UV_ prefix the header promises. */
static void every_libuv_code_is_named_like_libuv_with_prefix(void **state)
{
    (void)state;
    static const int uv_codes[] = {
#define BH_TEST_XX(code, _) UV_##code,
        UV_ERRNO_MAP(BH_TEST_XX)
#undef BH_TEST_XX
    };
    for (size_t i = 0; i < sizeof uv_codes / sizeof uv_codes[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "UV_%s", uv_err_name(uv_codes[i]));
        assert_string_equal(bh_err_name(uv_codes[i]), want);
        assert_string_equal(bh_strerror(uv_codes[i]), uv_strerror(uv_codes[i]));
    }
    assert_string_equal(bh_err_name(UV_EPIPE), "UV_EPIPE");
    assert_string_equal(bh_err_name(UV_EOF), "UV_EOF");
    assert_string_equal(bh_strerror(UV_EOF), "end of file");
    assert_string_equal(bh_err_name(UV_EAI_AGAIN), "UV_EAI_AGAIN");
}

TEST_MAIN(test_alloc_checked(library_codes_do_not_collide_with_libuv_codes),
          test_alloc_checked(every_libuv_code_is_named_like_libuv_with_prefix))
