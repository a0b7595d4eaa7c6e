/* hello.h - an incremental TLS ClientHello parser that peeks at buffered
 * bytes (a bh_buf's window) without consuming them.
 *
 * The hello may arrive in any TCP fragmentation and spread over several TLS
 * handshake records. The parser remembers offsets only (never pointers), so
 * the caller may let the buffer grow and move between calls, as long as the
 * first byte stays the first byte of the connection. Each call continues where
 * the previous one stopped; record headers are walked once. When the whole
 * handshake message is buffered, the ClientHello body is decoded in place
 * through a cursor that skips record headers: no copy, no allocation, and no
 * length field is trusted beyond the bytes that are actually present.
 *
 * Loop-free and allocation-free; used by sni_router, its unit tests and the
 * libFuzzer target tests/fuzz/fuzz_sni_hello.c. */
#ifndef SNI_HELLO_H
#define SNI_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* Longest host_name accepted (RFC 6066: at most 255 bytes in DNS form). */
#define SNI_HOST_MAX 255
/* Room for the offered ALPN protocols, comma-joined; longer lists are cut at a
 * protocol boundary and flagged alpn_truncated. */
#define SNI_ALPN_MAX 127

typedef enum sni_hello_status {
    SNI_HELLO_MORE = 0,         /* valid so far; feed more bytes */
    SNI_HELLO_DONE = 1,         /* complete ClientHello decoded */
    SNI_HELLO_NOT_TLS = -1,     /* first bytes are not a TLS handshake record */
    SNI_HELLO_SSLV2 = -2,       /* an SSL 2.0 (or SSLv2-compatible) ClientHello */
    SNI_HELLO_MALFORMED = -3,   /* framing or field lengths are inconsistent */
    SNI_HELLO_TOO_LARGE = -4,   /* the hello would need more than max_hello bytes */
    SNI_HELLO_BAD_NAME = -5     /* server_name present but not a valid host name */
} sni_hello_status;

typedef struct sni_hello {
    /* public: results, valid once sni_hello_parse() returned SNI_HELLO_DONE */
    size_t hello_end;        /* buffered bytes up to the end of the hello's last record */
    uint16_t version;        /* legacy_version of the ClientHello */
    int has_sni;             /* a server_name extension with a host_name was present */
    size_t sni_len;
    char sni[SNI_HOST_MAX + 1];   /* host_name, lower-cased, NUL-terminated; bytes
                                     outside '!'..'~' are kept as '?' (also in alpn) */
    int has_alpn;
    int alpn_truncated;
    char alpn[SNI_ALPN_MAX + 1];  /* offered protocols joined by ',' ("h2,http/1.1") */
    /* private: incremental framing state (offsets into the buffered bytes) */
    int sni_ext_seen;        /* a server_name extension was seen (host_name or not) */
    size_t max_hello;
    size_t pos;              /* next unexamined byte */
    size_t rec_left;         /* bytes of the current record not yet examined */
    size_t hs_have;          /* handshake bytes seen so far */
    size_t hs_need;          /* 4 + handshake length once the header is known, else 0 */
    uint8_t hs_hdr[4];
    int status;
} sni_hello;

/* Starts a parse; max_hello bounds the bytes the hello may occupy on the wire
 * (record headers included). */
void sni_hello_init(sni_hello *h, size_t max_hello);

/* Examines p[0..len), the connection's bytes from its first byte (len never
 * shrinks between calls). Returns SNI_HELLO_MORE, SNI_HELLO_DONE or a
 * negative sni_hello_status; once not MORE, the same status is returned
 * again without looking at p. */
int sni_hello_parse(sni_hello *h, const uint8_t *p, size_t len);

/* 1 if the hello offered ALPN protocol `proto`, else 0. */
int sni_hello_offers_alpn(const sni_hello *h, const char *proto);

/* Short stable name of a status ("more", "done", "not_tls", "sslv2",
 * "malformed", "too_large", "bad_name"). */
const char *sni_hello_status_name(int status);

#endif
