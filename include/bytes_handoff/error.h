/** @file bytes_handoff/error.h
 * @brief Status codes returned by every libbytes_handoff function.
 *
 * Functions return int: 0 (#BH_OK) on success, a negative #bh_err on
 * failure, or a negative libuv code (UV_EPIPE, UV_ECONNRESET, UV_EOF, ...)
 * where the failure comes from libuv. Library codes are chosen below -4000
 * so they never collide with libuv's errno-based codes. bh_strerror() names
 * both. A call that fails changes nothing unless its documentation says
 * otherwise. */
#ifndef BYTES_HANDOFF_ERROR_H
#define BYTES_HANDOFF_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The library's own status codes.
 * @since 0.1 */
typedef enum bh_err {
    BH_OK = 0,            /**< success */
    BH_ENOMEM = -4401,    /**< an allocation failed; state is unchanged */
    BH_ETOOLONG = -4402,  /**< would grow a buffer past max_len, or item > budget */
    BH_ERANGE = -4403,    /**< n or offset beyond the current length */
    BH_EFULL = -4404,     /**< a write queue budget (items or bytes) is exhausted */
    BH_ECLOSED = -4405,   /**< the queue or reader is closed, shut down or failed */
    BH_ECANCELED = -4406, /**< a pending write was dropped by bh_writeq_close() */
    BH_EINVAL = -4407,    /**< invalid argument (NULL pointer, zero size, bad state) */
    BH_EIO = -4408        /**< an I/O error without a more precise code */
} bh_err;

/** Human-readable message for a status code.
 * @param err a bh_err, a libuv error code (UV_EPIPE, UV_EOF, UV_EAI_*, ...)
 *            or a negative errno value (libuv's codes on Unix).
 * @return a static string, never NULL and never allocated; the same message
 *         as uv_strerror() for libuv's codes; "unknown error" for anything
 *         else. Works without libuv (static tables). Thread-safe.
 * @since 0.1 */
BH_EXPORT const char *bh_strerror(int err);

/** Symbolic name of a status code: "BH_ETOOLONG", "UV_EPIPE", "UV_EOF", ...
 * @param err as for bh_strerror().
 * @return a static string, never NULL and never allocated: "UV_" followed by
 *         libuv's uv_err_name() for libuv's codes and negative errno values,
 *         "UNKNOWN" for anything else. Thread-safe.
 * @since 0.1 */
BH_EXPORT const char *bh_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif
