/* test_tls_hello.c - TLS ClientHello bytes built by the tests of hello
 * parsers. */
#include "test_tls_hello.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

size_t test_tls_client_hello(const uint8_t *ext, size_t n, uint8_t *out, size_t cap)
{
    assert_true(n + 4 + 43 <= cap);
    uint8_t *p = out + 4;
    size_t k = 0;
    p[k++] = 3, p[k++] = 3;
    memset(p + k, 0xab, 32), k += 32;
    p[k++] = 0;                                           /* session id */
    p[k++] = 0, p[k++] = 2, p[k++] = 0x13, p[k++] = 0x01; /* one suite */
    p[k++] = 1, p[k++] = 0;                               /* null compression */
    p[k++] = (uint8_t)(n >> 8), p[k++] = (uint8_t)n;
    memcpy(p + k, ext, n), k += n;
    out[0] = 1, out[1] = 0, out[2] = (uint8_t)(k >> 8), out[3] = (uint8_t)k;
    return k + 4;
}

size_t test_tls_records(const uint8_t *hs, size_t n, size_t rec, uint8_t *out, size_t cap)
{
    size_t len = 0;
    for (size_t off = 0; off < n; off += rec) {
        size_t k = n - off < rec ? n - off : rec;
        assert_true(len + 5 + k <= cap);
        uint8_t *p = out + len;
        p[0] = 0x16, p[1] = 3, p[2] = 1, p[3] = (uint8_t)(k >> 8), p[4] = (uint8_t)k;
        memcpy(p + 5, hs + off, k);
        len += 5 + k;
    }
    return len;
}
