#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages needed to build, test and
# benchmark libbytes_handoff. Uses sudo when not run as root. The release
# checks need abigail-tools (abi_check), man-db (man_page_names) and lintian
# (package_lintian).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    ca-certificates cmake ninja-build gcc g++ clang libclang-rt-dev pkg-config make \
    libuv1-dev libcmocka-dev libbenchmark-dev libevent-dev \
    valgrind gnuplot-nox python3 jq libcjson-dev doxygen dpkg-dev file procps util-linux binutils openssl curl \
    abigail-tools lintian man-db nginx-light wrk
# abigail-tools, lintian, man-db: the ABI, package and man page checks;
# nginx-light and wrk: the http_router real-client tests (tests/e2e/http_router).
# Peers of bench/run-sni-bench.sh and bench/run-http-bench.sh (not needed to
# build or test; their Debian services are not used: the scripts run their own
# processes and configs).
if [ "${BH_BENCH_PEERS:-0}" = 1 ]; then
    $SUDO apt-get install -y -q --no-install-recommends \
        sniproxy haproxy libnginx-mod-stream linux-perf
fi
