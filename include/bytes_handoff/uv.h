/** @file bytes_handoff/uv.h
 * @brief The libuv adapter library, libbytes_handoff_uv: the read adapter
 * (bh_reader, uv/reader.h), the bounded write queue (bh_writeq,
 * uv/writeq.h) and the raw relay (bh_tunnel, uv/tunnel.h). Include this
 * header; it and the headers under bytes_handoff/uv/ are the only public
 * headers that include <uv.h>: the core (bytes, buf, queue) works with any
 * event loop.
 *
 * The objects are caller-owned structs (embed them by value, like libuv
 * handles). Their fields are public only so they can be embedded: treat them
 * as private. Unless a function says otherwise, call it on the loop thread. */
#ifndef BYTES_HANDOFF_UV_H
#define BYTES_HANDOFF_UV_H

#include "uv/reader.h"
#include "uv/tunnel.h"
#include "uv/writeq.h"

#endif
