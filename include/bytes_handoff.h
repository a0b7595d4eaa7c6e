/* bytes_handoff.h - umbrella header for libbytes_handoff.
 *
 * Owned byte buffers across asynchronous I/O boundaries: bh_bytes (immutable
 * refcounted slices), bh_buf (growable mutable buffer with a max length).
 * The libuv read adapter and bounded write queue live in
 * <bytes_handoff/uv.h>, the only header that includes <uv.h>. */
#ifndef BYTES_HANDOFF_H
#define BYTES_HANDOFF_H

#include "bytes_handoff/alloc.h"
#include "bytes_handoff/buf.h"
#include "bytes_handoff/bytes.h"
#include "bytes_handoff/error.h"
#include "bytes_handoff/export.h"

#define BH_VERSION_MAJOR 0
#define BH_VERSION_MINOR 1
#define BH_VERSION_PATCH 0
#define BH_VERSION_HEX ((BH_VERSION_MAJOR << 16) | (BH_VERSION_MINOR << 8) | BH_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* Runtime version as BH_VERSION_HEX of the library actually linked. */
BH_EXPORT unsigned bh_version(void);

/* Runtime version as "MAJOR.MINOR.PATCH". */
BH_EXPORT const char *bh_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
