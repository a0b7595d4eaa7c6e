/* export.h - symbol visibility for libbytes_handoff.
 *
 * The library is compiled with hidden default visibility; only declarations
 * marked BH_EXPORT are part of the shared library's ABI. */
#ifndef BYTES_HANDOFF_EXPORT_H
#define BYTES_HANDOFF_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define BH_EXPORT __attribute__((visibility("default")))
#else
#define BH_EXPORT
#endif

#endif
