#!/usr/bin/env bash
# check_seam.sh SRC_DIR [COMPILE_COMMANDS] - the adapter uses the core's
# public headers only: fails when a file under SRC_DIR/uv includes a header
# that lives in SRC_DIR/core (by any spelling: "internal.h", "../core/x.h",
# "core/x.h", <x.h>), and, given the build's compile_commands.json, when an
# object of the adapter library (bytes_handoff_uv_objects) is compiled with
# SRC_DIR/core on its include path.
set -euo pipefail
src=$(cd "$1" && pwd -P)
core="$src/core"
bad=""
while IFS= read -r f; do
    dir=$(dirname "$f")
    while IFS= read -r inc; do
        # The first existing candidate is the header a compiler given the
        # file's own folder, src/ or src/core as include paths would take.
        for cand in "$dir/$inc" "$src/$inc" "$core/$inc"; do
            if [ -f "$cand" ]; then
                real=$(cd "$(dirname "$cand")" && pwd -P)
                case "$real" in
                "$core" | "$core"/*) bad+="${f#"$src"/}: #include $inc"$'\n' ;;
                esac
                break
            fi
        done
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^>"]*\)[>"].*/\1/p' "$f")
done < <(find "$src/uv" -name '*.[ch]' -o -name '*.inc' | sort)
if [ -n "$bad" ]; then
    printf 'src/uv includes core-private headers:\n%s' "$bad"; exit 1
fi
if [ $# -ge 2 ]; then
    leaks=$(grep '"command".*bytes_handoff_uv_objects\.dir' "$2" | grep -E -- "-I *$core( |\")" || true)
    if [ -n "$leaks" ]; then
        echo "adapter objects compiled with -I $core:"; echo "$leaks"; exit 1
    fi
    if ! grep -q '"command".*bytes_handoff_uv_objects\.dir' "$2"; then
        echo "no adapter object in $2"; exit 1
    fi
fi
echo "seam ok: no src/uv file includes a src/core header"
