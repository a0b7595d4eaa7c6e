#!/usr/bin/env bash
# check_packages.sh BUILD_DIR - the ctest package_lintian: builds the Debian
# packages of BUILD_DIR with cpack into BUILD_DIR/package_check and checks
#   - the runtime package: a shlibs file naming both libraries, the
#     `activate-noawait ldconfig` trigger, no maintainer script that runs
#     ldconfig (nor any postinst/postrm at all);
#   - both packages: usr/share/doc/<package>/copyright (DEP-5) and
#     changelog.Debian.gz;
#   - the -dev package: the man pages, gzipped, bh_*.3.gz only, as many as
#     the build made;
#   - lintian --fail-on error passes (its warnings are printed).
# Exit 77 (skipped) without dpkg-deb or lintian, or without the man pages
# (doxygen not found at configure time).
set -euo pipefail
build=$(cd "$1" && pwd)
for tool in dpkg-deb lintian; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool not found (apt install $tool)"; exit 77; }
done
[ -d "$build/docs/man/man3" ] ||
    { echo "skipped: no man pages in $build/docs/man/man3 (doxygen or python3 missing)"; exit 77; }
out=$build/package_check
rm -rf "$out"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$out" >"$out.log" 2>&1 ||
    { cat "$out.log"; exit 1; }
runtime=$(ls "$out"/libbytes-handoff[0-9]*_*.deb)
dev=$(ls "$out"/libbytes-handoff-dev_*.deb)
echo "-- packages: $(basename "$runtime") $(basename "$dev")"
fail=0
problem() { echo "problem: $*"; fail=1; }

ctl=$out/runtime.control
dpkg-deb -e "$runtime" "$ctl"
soversion=$(basename "$runtime" | sed -n 's/^libbytes-handoff\([0-9.]*\)_.*/\1/p')
for lib in libbytes_handoff libbytes_handoff_uv; do
    grep -q -x "$lib $soversion $(dpkg-deb -f "$runtime" Package) (>= [0-9.]*)" "$ctl/shlibs" 2>/dev/null ||
        problem "runtime shlibs lacks '$lib $soversion ...'"
done
grep -q -x 'activate-noawait ldconfig' "$ctl/triggers" 2>/dev/null ||
    problem "runtime package has no 'activate-noawait ldconfig' trigger"
for script in preinst postinst prerm postrm; do
    [ ! -e "$ctl/$script" ] || problem "runtime package has a $script: $(tr '\n' ' ' <"$ctl/$script")"
done
for deb in "$runtime" "$dev"; do
    pkg=$(dpkg-deb -f "$deb" Package)
    list=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
    for f in copyright changelog.Debian.gz; do
        grep -q -x "./usr/share/doc/$pkg/$f" <<<"$list" || problem "$pkg lacks usr/share/doc/$pkg/$f"
    done
    if dpkg-deb -e "$deb" "$out/$pkg.ctl" && grep -l -s ldconfig "$out/$pkg.ctl"/*inst "$out/$pkg.ctl"/*rm; then
        problem "$pkg: a maintainer script runs ldconfig"
    fi
done
dpkg-deb --fsys-tarfile "$dev" | tar -xO ./usr/share/doc/libbytes-handoff-dev/copyright 2>/dev/null |
    head -n1 | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
    problem "dev copyright is not machine-readable (DEP-5)"
man=$(dpkg-deb -c "$dev" | awk '{ print $6 }' | grep '^\./usr/share/man/' | grep -v '/$' || true)
built=$(find "$build/docs/man/man3" -name 'bh_*.3.gz' | wc -l)
n=$(grep -c '^\./usr/share/man/man3/bh_[a-z0-9_]*\.3\.gz$' <<<"$man" || true)
[ "$n" -gt 0 ] && [ "$n" -eq "$built" ] || problem "dev package has $n bh_*.3.gz man pages, the build made $built"
other=$(grep -v '^\./usr/share/man/man3/bh_[a-z0-9_]*\.3\.gz$' <<<"$man" || true)
[ -z "$other" ] || problem "other files under usr/share/man: $other"
echo "-- man pages: $n gzipped"

echo "-- lintian --fail-on error"
lrc=0
lintian --fail-on error "$runtime" "$dev" 2>&1 | grep -v 'running with root privileges' || lrc=${PIPESTATUS[0]}
[ "$lrc" -eq 0 ] || problem "lintian found errors (exit $lrc)"
[ $fail -eq 0 ] && echo "packages ok"
exit $fail
