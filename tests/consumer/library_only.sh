#!/usr/bin/env bash
# library_only.sh SOURCE_DIR C_COMPILER - the library-only build needs libuv,
# a C compiler and CMake only. Every configure below runs in a scratch folder
# with everything else hidden: pkg-config sees libuv.pc alone
# (PKG_CONFIG_LIBDIR), and cmocka, google-benchmark, Doxygen and Python are
# CMAKE_DISABLE_FIND_PACKAGE_*.
#   1. the `library` preset, without even the pkg-config program
#      (CMAKE_DISABLE_FIND_PACKAGE_PkgConfig), configures, builds and installs
#      both libraries (shared and static) into a staging prefix; no `docs`
#      target;
#   2. BH_BUILD_TESTS=ON without cmocka stops, naming libcmocka-dev and
#      -DBH_BUILD_TESTS=OFF;
#   3. BH_BUILD_BENCH=ON without google-benchmark stops, naming
#      libbenchmark-dev and -DBH_BUILD_BENCH=OFF;
#   4. the tests with cmocka but without libevent and cJSON configure (the
#      stream harness's smoke tests are left out, with a message).
set -euo pipefail
src=$1
cc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pc"
if command -v pkg-config >/dev/null; then
    cp "$(pkg-config --variable=pcfiledir libuv)/libuv.pc" "$tmp/pc/"
fi
export PKG_CONFIG_LIBDIR="$tmp/pc" PKG_CONFIG_PATH=""
hidden=(-DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
        -DCMAKE_DISABLE_FIND_PACKAGE_Doxygen=ON -DCMAKE_DISABLE_FIND_PACKAGE_Python3=ON)
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

# configure NAME ARGS...: configures the source into $tmp/NAME, log in
# $tmp/NAME.log; returns cmake's status.
configure() {
    local name=$1
    shift
    (cd "$src" && cmake "$@" -B "$tmp/$name" "${generator[@]}" -DCMAKE_C_COMPILER="$cc" \
        "${hidden[@]}") >"$tmp/$name.log" 2>&1
}
# expect_failure NAME TEXT...: the configure NAME failed and said every TEXT.
expect_failure() {
    local name=$1 text
    shift
    for text in "$@"; do
        grep -q -F -e "$text" "$tmp/$name.log" ||
            { echo "$name: the message lacks '$text':"; cat "$tmp/$name.log"; exit 1; }
    done
    sed -n '/CMake Error/,/Configuring incomplete/p' "$tmp/$name.log" | grep -v '^$' | head -n 8
}

echo "-- 1. cmake --preset library (only libuv visible)"
configure library --preset library -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON ||
    { cat "$tmp/library.log"; exit 1; }
grep -E -- '-- (libuv|doxygen)' "$tmp/library.log"
cmake --build "$tmp/library" -j2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
if cmake --build "$tmp/library" --target docs >/dev/null 2>&1; then
    echo "a docs target exists without doxygen"; exit 1
fi
cmake --install "$tmp/library" --prefix "$tmp/stage" >/dev/null
for f in libbytes_handoff.so libbytes_handoff.a libbytes_handoff_uv.so libbytes_handoff_uv.a \
         bytes_handoff.h bytes_handoff/uv.h bytes_handoff/version.h \
         cmake/bytes_handoff/bytes_handoffConfig.cmake cmake/bytes_handoff/bytes_handoffLibuv.cmake \
         pkgconfig/bytes_handoff_uv.pc; do
    [ -n "$(find "$tmp/stage" -path "*/$f" -print -quit)" ] ||
        { echo "the staged install lacks $f"; exit 1; }
done
echo "   built and installed: $(find "$tmp/stage" -name 'libbytes_handoff*' -printf '%f ')"

echo "-- 2. tests on, cmocka hidden"
if configure tests -DBH_BUILD_TESTS=ON -DBH_BUILD_EXAMPLES=OFF; then
    echo "configured the tests without cmocka"; exit 1
fi
expect_failure tests "libcmocka-dev" "-DBH_BUILD_TESTS=OFF"

echo "-- 3. bench on, google-benchmark hidden"
if configure bench -DBH_BUILD_TESTS=OFF -DBH_BUILD_EXAMPLES=OFF -DBH_BUILD_BENCH=ON; then
    echo "configured the bench without google-benchmark"; exit 1
fi
expect_failure bench "libbenchmark-dev" "-DBH_BUILD_BENCH=OFF"

echo "-- 4. tests on with cmocka, libevent and cJSON hidden"
hidden=("${hidden[@]:1}")
configure tests-noevent -DBH_BUILD_TESTS=ON -DBH_BUILD_EXAMPLES=ON ||
    { cat "$tmp/tests-noevent.log"; exit 1; }
grep -F -- "driver and proxy need libevent" "$tmp/tests-noevent.log" ||
    { echo "no message about the stream harness:"; cat "$tmp/tests-noevent.log"; exit 1; }
echo "library-only check passed"
