/** @file bytes_handoff/export.h
 * @brief Symbol visibility of the shared libraries.
 *
 * The libraries are compiled with hidden default visibility; only
 * declarations marked BH_EXPORT are part of the shared libraries' ABI. */
#ifndef BYTES_HANDOFF_EXPORT_H
#define BYTES_HANDOFF_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
/** Marks a declaration as exported from the shared library. */
#define BH_EXPORT __attribute__((visibility("default")))
#else
#define BH_EXPORT
#endif

#endif
