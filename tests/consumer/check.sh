#!/usr/bin/env bash
# check.sh BUILD_DIR SOURCE_DIR - installs the library to a temporary prefix
# and builds tests/consumer/consumer.c against it twice: with pkg-config and
# with find_package(bytes_handoff); runs each program.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name 'libbytes_handoff.so' -printf '%h\n' | head -n1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
export LD_LIBRARY_PATH="$libdir"

echo "-- pkg-config: $(pkg-config --cflags --libs bytes_handoff)"
cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror "$src/tests/consumer/consumer.c" \
    $(pkg-config --cflags --libs bytes_handoff) -o "$tmp/consumer_pc"
"$tmp/consumer_pc"

echo "-- find_package"
cmake -S "$src/tests/consumer" -B "$tmp/build" -G Ninja \
    -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_FLAGS="-D_POSIX_C_SOURCE=200809L" >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/consumer_shared"
"$tmp/build/consumer_static"
echo "consumer check passed"
