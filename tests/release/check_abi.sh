#!/usr/bin/env bash
# check_abi.sh ABI_DIR INCLUDE_DIR BUILD_INCLUDE_DIR LIB... - the ctest
# abi_check (libabigail): each shared library LIB against its baseline
# ABI_DIR/<name>.abi (abi/libbytes_handoff.abi, abi/libbytes_handoff_uv.abi),
# types of the public headers (INCLUDE_DIR, BUILD_INCLUDE_DIR) only.
#
# Policy: while the built library's SONAME is the baseline's, its ABI must be
# the baseline's exactly: abidiff (types of the public headers only) must
# report no change at all, compatible or not. A compatible addition is
# recorded by regenerating the baseline (scripts/update-abi-baseline.sh,
# which refuses removed or changed functions and variables under an
# unchanged SONAME); an incompatible change needs a new SONAME first (a new
# minor version while 0.x, a new major from 1.0; CMakeLists.txt,
# BH_SOVERSION). When the SONAMEs differ the check passes and says that the
# baseline is to be regenerated for the new SONAME.
# Exit 77 (skipped) without abidw/abidiff or without debug info in LIB.
set -euo pipefail
abi_dir=$1
headers=(--headers-dir1 "$2" --headers-dir1 "$3" --headers-dir2 "$2" --headers-dir2 "$3")
shift 3
for tool in abidiff readelf; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool not found (apt install abigail-tools binutils)"; exit 77; }
done
failed=0
for lib in "$@"; do
    name=$(basename "$lib")
    baseline=$abi_dir/${name%%.so*}.abi
    if ! readelf -S --wide "$lib" | grep -q '\.debug_info'; then
        echo "skipped: $lib has no debug info (-g); build with the default, asan or release preset"
        exit 77
    fi
    [ -f "$baseline" ] || { echo "no baseline $baseline: run scripts/update-abi-baseline.sh"; exit 1; }
    built_soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    base_soname=$(sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$baseline")
    if [ "$built_soname" != "$base_soname" ]; then
        echo "SONAME changed: baseline $base_soname, built $built_soname; the ABI may change with it."
        echo "Regenerate the baseline for the new SONAME: scripts/update-abi-baseline.sh"
        continue
    fi
    rc=0
    report=$(abidiff --no-show-locs "${headers[@]}" "$baseline" "$lib") || rc=$?
    printf '%s\n' "$report"
    # An inline function's "declared inline" flag follows the optimisation
    # level of the build (-O0 vs -O2 debug info), not the ABI: a report
    # with nothing else (exit 4, ABI change, not incompatible) passes.
    if [ $rc -eq 4 ] && ! grep -v -E -q \
        -e '^(Functions|Variables) changes summary: ' \
        -e '^[0-9]+ functions? with some indirect sub-type changes?:$' \
        -e "^  \[C\] 'function .*' has some indirect sub-type changes:$" \
        -e '^    function .* (is now declared inline|is not declared inline anymore)$' \
        -e '^$' <<<"$report"; then
        echo "(only the 'declared inline' flag of inline functions differs: debug info of another -O level)"
        rc=0
    fi
    if [ $rc -ne 0 ]; then
        echo "ABI of $built_soname differs from $baseline (abidiff exit $rc) while the SONAME is unchanged."
        echo "Compatible additions: scripts/update-abi-baseline.sh. Anything else needs a new SONAME"
        echo "(raise the minor version while 0.x: BH_SOVERSION in CMakeLists.txt)."
        failed=1
    else
        echo "ABI of $built_soname matches $baseline"
    fi
done
exit $failed
