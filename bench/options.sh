# options.sh - strict command-line values for the bench scripts (sourced,
# never run). A bad or missing value ends the script with exit status 2 and
# a pointer to --help, before anything runs.
#
#   opt_need OPT ARGC      OPT was given without a value ("$#" as ARGC)
#   opt_uint OPT VALUE     VALUE must be a whole number >= 0
#   opt_pos OPT VALUE      VALUE must be a whole number >= 1
#   opt_num OPT VALUE      VALUE must be a number >= 0 (decimals allowed)
#   opt_list OPT VALUE WORD...  VALUE must be a comma list of the WORDs
#   usage_error MESSAGE    prints "PROG: MESSAGE" and the pointer, exits 2
# PROG is the sourcing script's name.

usage_error() {
    echo "$(basename "$0"): $*" >&2
    echo "see $(basename "$0") --help" >&2
    exit 2
}

opt_need() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }

opt_uint() { [[ "$2" =~ ^[0-9]+$ ]] || usage_error "$1 takes a whole number, not '$2'"; }

opt_pos() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 takes a whole number >= 1, not '$2'"; }

opt_num() {
    [[ "$2" =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "$1 takes a number >= 0, not '$2'"
}

opt_list() {
    local opt=$1 value=$2 item word ok
    shift 2
    [ -n "$value" ] || usage_error "$opt needs a value"
    IFS=, read -r -a _items <<< "$value"
    for item in "${_items[@]}"; do
        ok=0
        for word in "$@"; do [ "$item" = "$word" ] && ok=1; done
        [ "$ok" = 1 ] || usage_error "$opt: '$item' is none of $(IFS=,; echo "$*")"
    done
}
