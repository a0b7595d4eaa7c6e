#!/usr/bin/env bash
# check.sh BUILD_DIR SOURCE_DIR [--deb] - installs both libraries to a
# temporary prefix (with --deb: builds the Debian packages with cpack, checks
# their split and extracts both into a temporary root) and builds the
# consumers against it the ways a user would:
#   1. core only: <bytes_handoff.h> with `pkg-config bytes_handoff`; the link
#      line and the program must not mention libuv;
#   2. adapter: `pkg-config bytes_handoff_uv` (shared);
#   3. static: both archives plus libuv's own archive (Debian: libuv_a via
#      libuv-static.pc), so the program needs neither shared library;
#   4. with --deb, find_package(bytes_handoff CONFIG COMPONENTS uv) too:
#      check_cmake_package.sh (for an install, ctest runs it on its own as
#      cmake_package_consumer_variables);
#   5. find_package(bytes_handoff 0.1) does not accept this 0.2 (the CMake
#      package's SameMinorVersion: another minor is another ABI while 0.x).
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${3:-}" = "--deb" ]; then
    cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/debs" >"$tmp/cpack.log" ||
        { cat "$tmp/cpack.log"; exit 1; }
    runtime=$(ls "$tmp"/debs/libbytes-handoff[0-9]*_*.deb)
    dev=$(ls "$tmp"/debs/libbytes-handoff-dev_*.deb)
    echo "-- packages: $(basename "$runtime") $(basename "$dev")"
    # Runtime: the shared objects (SONAME .so.MAJOR.MINOR while 0.x), the
    # copyright file and the Debian changelog only.
    pkg=$(dpkg-deb -f "$runtime" Package)
    extra=$(dpkg-deb -c "$runtime" | awk '{ print $6 }' | grep -v '/$' |
            grep -v -E "/libbytes_handoff(_uv)?\.so\.[0-9]+(\.[0-9]+)*\$|/doc/$pkg/(copyright|changelog\.Debian\.gz)\$" || true)
    [ -z "$extra" ] || { echo "runtime package holds more than the shared objects:"; echo "$extra"; exit 1; }
    # Dev: no shared object of the runtime package, everything to build with.
    devlist=$(dpkg-deb -c "$dev" | awk '{ print $6 }')
    if grep -E -q '\.so\.[0-9]' <<<"$devlist"; then
        echo "dev package holds runtime files"; exit 1
    fi
    for f in include/bytes_handoff.h include/bytes_handoff/uv.h include/bytes_handoff/version.h \
             libbytes_handoff.a libbytes_handoff_uv.a pkgconfig/bytes_handoff_uv.pc \
             cmake/bytes_handoff/bytes_handoffConfig.cmake /README.md /changelog.gz /guide.md \
             /examples/; do
        grep -q -F "$f" <<<"$devlist" || { echo "dev package lacks $f"; exit 1; }
    done
    grep -q "$pkg (=" <<<"$(dpkg-deb -f "$dev" Depends)" ||
        { echo "dev package does not depend on the runtime package"; exit 1; }
    dpkg-deb -x "$runtime" "$tmp/root"
    dpkg-deb -x "$dev" "$tmp/root"
    prefix="$tmp/root/usr"
else
    cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
    prefix="$tmp/prefix"
fi
libdir=$(find "$prefix" -name 'libbytes_handoff.so' -printf '%h\n' | head -n1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
export LD_LIBRARY_PATH="$libdir"
cflags="-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror"

core_libs=$(pkg-config --cflags --libs bytes_handoff)
echo "-- core, pkg-config: $core_libs"
case "$core_libs" in *uv*) echo "core link line mentions libuv"; exit 1 ;; esac
cc $cflags "$src/tests/consumer/consumer_core.c" $core_libs -o "$tmp/consumer_core"
"$tmp/consumer_core"
if ldd "$tmp/consumer_core" | grep -q libuv; then
    echo "core consumer loads libuv:"; ldd "$tmp/consumer_core"; exit 1
fi

uv_libs=$(pkg-config --cflags --libs bytes_handoff_uv)
echo "-- uv, pkg-config: $uv_libs"
cc $cflags "$src/tests/consumer/consumer.c" $uv_libs -o "$tmp/consumer_uv"
"$tmp/consumer_uv"

static_libs="-l:libbytes_handoff_uv.a -l:libbytes_handoff.a $(pkg-config --libs libuv-static)"
echo "-- uv, static: -L$libdir $static_libs"
cc $cflags "$src/tests/consumer/consumer.c" $(pkg-config --cflags bytes_handoff_uv) \
    -L"$libdir" $static_libs -pthread -o "$tmp/consumer_static"
if ldd "$tmp/consumer_static" | grep -E -q 'libuv|libbytes_handoff'; then
    echo "static consumer loads a shared library it should contain:"; ldd "$tmp/consumer_static"
    exit 1
fi
"$tmp/consumer_static"

if [ "${3:-}" = "--deb" ]; then
    "$src/tests/consumer/check_cmake_package.sh" --prefix "$prefix" "$src"
fi

echo "-- find_package(bytes_handoff 0.1) is refused (SameMinorVersion while 0.x)"
mkdir -p "$tmp/old"
cat >"$tmp/old/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(bh_old_consumer LANGUAGES C)
find_package(bytes_handoff 0.1 CONFIG QUIET)
if(bytes_handoff_FOUND)
    message(FATAL_ERROR "a request for 0.1 got bytes_handoff ${bytes_handoff_VERSION}")
endif()
CMAKE
cmake -S "$tmp/old" -B "$tmp/old/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
echo "consumer check passed"
