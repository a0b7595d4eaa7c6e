#!/usr/bin/env bash
# check_cmake_package.sh (--build BUILD_DIR | --prefix PREFIX) SOURCE_DIR -
# the installed CMake package as a consumer project (tests/consumer) meets it:
#   1. find_package(bytes_handoff X.Y CONFIG REQUIRED COMPONENTS uv), X.Y the
#      installed version: the consumer prints the variables and cache entries
#      it had before and what find_package added, and fails on an added name
#      outside bytes_handoff_* or a changed value; all four targets build and
#      run (the core consumer without libuv, the static one without either
#      shared library of ours);
#   2. the same with no pkg-config program: a pkg-config on PATH (and
#      PKG_CONFIG_EXECUTABLE) that records being run and fails;
#   3. libuv hidden (CMAKE_IGNORE_PREFIX_PATH over the system prefixes): the
#      configure fails with the package's own message;
#   4. libuv from libuv's own CMake package only (a libuvConfig.cmake as
#      libuv >= 1.45 installs one, naming this system's libuv; the system
#      prefixes hidden): found by the consumer first (libuv::uv exists), and
#      found by the package config (which leaves libuv_DIR in the cache).
# --build installs BUILD_DIR into a temporary prefix first (ctest
# cmake_package_consumer_variables); --prefix uses an installed tree
# (consumer/check.sh --deb: the extracted packages).
set -euo pipefail
mode=$1
where=$2
src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = "--build" ]; then
    cmake --install "$where" --prefix "$tmp/prefix" >/dev/null
    prefix="$tmp/prefix"
else
    prefix=$where
fi
version_file=$(find "$prefix" -name bytes_handoffConfigVersion.cmake | head -n1)
version=$(sed -n 's/^set(PACKAGE_VERSION "\([0-9]*\.[0-9]*\)\..*")$/\1/p' "$version_file")
[ -n "$version" ] || { echo "no version in $version_file"; exit 1; }
libdir=$(find "$prefix" -name 'libbytes_handoff.so' -printf '%h\n' | head -n1)
export LD_LIBRARY_PATH="$libdir"
consumer=(cmake -S "$src/tests/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
          -DCMAKE_C_FLAGS="-D_POSIX_C_SOURCE=200809L" -DBH_CONSUMER_VERSION="$version")

echo "-- 1. find_package(bytes_handoff $version CONFIG REQUIRED COMPONENTS uv)"
"${consumer[@]}" -B "$tmp/build" >"$tmp/configure.log" 2>&1 ||
    { cat "$tmp/configure.log"; exit 1; }
grep -E -- '-- (variables|cache entries) before find_package' "$tmp/configure.log"
cmake --build "$tmp/build" >/dev/null
for p in consumer_core_shared consumer_core_static consumer_uv_shared consumer_uv_static; do
    "$tmp/build/$p"
done
if ldd "$tmp/build/consumer_core_shared" | grep -q libuv; then
    echo "find_package core consumer loads libuv"; exit 1
fi
if ldd "$tmp/build/consumer_uv_static" | grep -q libbytes_handoff; then
    echo "bytes_handoff::uv_static consumer loads a shared library of ours"; exit 1
fi

echo "-- 2. without the pkg-config program"
mkdir "$tmp/trap"
for name in pkg-config pkgconf; do
    printf '#!/bin/sh\necho "$0 $*" >>"%s/pkg-config-ran"\nexit 1\n' "$tmp" >"$tmp/trap/$name"
    chmod +x "$tmp/trap/$name"
done
PATH="$tmp/trap:$PATH" "${consumer[@]}" -B "$tmp/build-nopc" \
    -DPKG_CONFIG_EXECUTABLE="$tmp/trap/pkg-config" >"$tmp/nopc.log" 2>&1 ||
    { cat "$tmp/nopc.log"; exit 1; }
PATH="$tmp/trap:$PATH" cmake --build "$tmp/build-nopc" >/dev/null
if [ -e "$tmp/pkg-config-ran" ]; then
    echo "the package config ran pkg-config:"; cat "$tmp/pkg-config-ran"; exit 1
fi
"$tmp/build-nopc/consumer_uv_shared"

echo "-- 3. libuv hidden"
if "${consumer[@]}" -B "$tmp/build-nouv" -DCMAKE_IGNORE_PREFIX_PATH="/usr;/;/usr/local" \
        -DCMAKE_DISABLE_FIND_PACKAGE_libuv=ON >"$tmp/nouv.log" 2>&1; then
    echo "the consumer configured with libuv hidden"; cat "$tmp/nouv.log"; exit 1
fi
if ! grep -q 'bytes_handoff: the uv component needs libuv' "$tmp/nouv.log"; then
    echo "no message of the package's own:"; cat "$tmp/nouv.log"; exit 1
fi
sed -n '/Reason given by package/,/Configuring incomplete/p' "$tmp/nouv.log" | grep -v '^$'
echo "-- 4. libuv through libuv's own CMake package"
uv_header=$(printf '#include <uv.h>\n' | cc -M -xc - | tr ' ' '\n' | grep '/uv\.h$' | head -n1)
uv_library=$(readlink -f "$(cc -print-file-name=libuv.so)")
mkdir -p "$tmp/uvpkg/lib/cmake/libuv"
printf '%s\n' "add_library(libuv::uv SHARED IMPORTED)" \
    "set_target_properties(libuv::uv PROPERTIES IMPORTED_LOCATION \"$uv_library\"" \
    "    INTERFACE_INCLUDE_DIRECTORIES \"$(dirname "$uv_header")\")" \
    >"$tmp/uvpkg/lib/cmake/libuv/libuvConfig.cmake"
for how in consumer package; do
    if [ "$how" = consumer ]; then extra=-DBH_CONSUMER_FIND_LIBUV=ON
    else extra=-DBH_CONSUMER_ALLOW=^libuv_DIR$; fi
    "${consumer[@]}" -B "$tmp/build-uvpkg-$how" -DCMAKE_PREFIX_PATH="$prefix;$tmp/uvpkg" \
        -DCMAKE_IGNORE_PREFIX_PATH="/usr;/;/usr/local" "$extra" >"$tmp/uvpkg.log" 2>&1 ||
        { cat "$tmp/uvpkg.log"; exit 1; }
    echo "   libuv::uv found by the $how:"
    grep -E -- '-- cache entries before find_package' "$tmp/uvpkg.log"
    cmake --build "$tmp/build-uvpkg-$how" >/dev/null
    "$tmp/build-uvpkg-$how/consumer_uv_shared"
done
echo "cmake package check passed"
