#!/bin/sh
# standalone_examples.sh BUILD_DIR - the examples folder as the -dev package
# ships it builds on its own: installs the build to a temporary prefix, then
# configures share/doc/bytes_handoff/examples there (which adds the shipped
# tools/ next to it) with find_package(bytes_handoff) against that prefix,
# builds every example with -Werror and runs each one's --version.
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
examples=$(find "$tmp/prefix/share/doc" -maxdepth 2 -type d -name examples | head -n1)
[ -n "$examples" ] || { echo "FAIL: no examples folder installed"; exit 1; }
[ -f "$examples/../tools/CMakeLists.txt" ] || { echo "FAIL: tools/ not shipped next to $examples"; exit 1; }
echo "-- configuring $examples"
cmake -S "$examples" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_FLAGS=-Werror \
    -DCMAKE_BUILD_TYPE=Debug >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/build" -j2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
grep -c "Building C object" "$tmp/build.log" | sed "s/^/-- compiled: /;s/$/ sources/"
for p in line_protocol length_prefix write_handoff line_router content_routing sni_router; do
    "$tmp/build/$p" --version
done
echo "PASS: the shipped examples build on their own against the installed libraries"
