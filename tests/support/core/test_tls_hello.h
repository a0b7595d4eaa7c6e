/* test_tls_hello.h - TLS ClientHello bytes built by the tests of hello
 * parsers: a ClientHello handshake message around an extensions block, and
 * TLS handshake records around handshake bytes. */
#ifndef BH_TEST_TLS_HELLO_H
#define BH_TEST_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* Writes to out (cap bytes) a ClientHello handshake message (4-byte header)
 * with version 3.3, a random of 0xab bytes, no session id, one suite
 * (0x1301), null compression and the extensions block ext (n bytes).
 * Returns its length; asserts (cmocka) that it fits. */
size_t test_tls_client_hello(const uint8_t *ext, size_t n, uint8_t *out, size_t cap);

/* Writes to out (cap bytes) handshake bytes hs (n) framed as TLS handshake
 * records (version 3.1) of at most rec bytes of payload each. Returns the
 * total length; asserts (cmocka) that it fits. */
size_t test_tls_records(const uint8_t *hs, size_t n, size_t rec, uint8_t *out, size_t cap);

#endif
