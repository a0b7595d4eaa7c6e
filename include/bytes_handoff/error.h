/* error.h - status codes returned by every libbytes_handoff function.
 *
 * Functions return int: 0 (BH_OK) on success, a negative bh_err on failure,
 * or a negative libuv code (UV_EPIPE, UV_ECONNRESET, UV_EOF, ...) where the
 * failure comes from libuv. Library codes are chosen below -4000 so they never
 * collide with libuv's errno-based codes. bh_strerror() names both. */
#ifndef BYTES_HANDOFF_ERROR_H
#define BYTES_HANDOFF_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bh_err {
    BH_OK = 0,
    BH_ENOMEM = -4401,    /* an allocation failed; state is unchanged */
    BH_ETOOLONG = -4402,  /* would grow a buffer past max_len, or item > budget */
    BH_ERANGE = -4403,    /* n or offset beyond the current length */
    BH_EFULL = -4404,     /* a write queue budget (items or bytes) is exhausted */
    BH_ECLOSED = -4405,   /* the queue or reader is closed, shut down or failed */
    BH_ECANCELED = -4406, /* a pending write was dropped by bh_writeq_close() */
    BH_EINVAL = -4407,    /* invalid argument (NULL pointer, zero size, bad state) */
    BH_EIO = -4408        /* an I/O error without a more precise code */
} bh_err;

/* Returns a static, human-readable string for a bh_err or a libuv error code.
 * Never returns NULL; unknown codes give "unknown error". Thread-safe. */
BH_EXPORT const char *bh_strerror(int err);

/* Returns the symbolic name ("BH_ETOOLONG", "UV_EPIPE", ...) of a code. */
BH_EXPORT const char *bh_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif
