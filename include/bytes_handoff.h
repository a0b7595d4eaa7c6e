/** @file bytes_handoff.h
 * @brief Umbrella header of the core library, libbytes_handoff.
 *
 * Owned byte buffers across asynchronous I/O boundaries: bh_bytes (immutable
 * refcounted slices), bh_buf (growable mutable buffer with a max length),
 * the loop-free write queue core (bh_queue), the per-thread caches,
 * the status codes and the allocator hook. The core needs only libc and
 * pthreads. The libuv read adapter, write queue and tunnel live in the
 * adapter library, libbytes_handoff_uv, declared in <bytes_handoff/uv.h> and
 * the headers under bytes_handoff/uv/ it includes, the only headers that
 * include <uv.h>. */
#ifndef BYTES_HANDOFF_H
#define BYTES_HANDOFF_H

#include "bytes_handoff/alloc.h"
#include "bytes_handoff/block_cache.h"
#include "bytes_handoff/buf.h"
#include "bytes_handoff/bytes.h"
#include "bytes_handoff/error.h"
#include "bytes_handoff/export.h"
#include "bytes_handoff/queue.h"
#include "bytes_handoff/thread_cache.h"
#include "bytes_handoff/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Version of the library actually linked, as BH_VERSION_HEX.
 * @return `(major << 16) | (minor << 8) | patch` of the running library,
 *         which may differ from the headers' BH_VERSION_HEX. Thread-safe.
 * @since 0.1 */
BH_EXPORT unsigned bh_version(void);

/** Version of the library actually linked, as text.
 * @return a static "MAJOR.MINOR.PATCH" string, never NULL. Thread-safe.
 * @since 0.1 */
BH_EXPORT const char *bh_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
