#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages needed to build, test and
# benchmark libbytes_handoff. Uses sudo when not run as root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    ca-certificates cmake ninja-build gcc g++ clang libclang-rt-dev pkg-config make \
    libuv1-dev libcmocka-dev libbenchmark-dev libevent-dev libcjson-dev \
    valgrind gnuplot-nox python3 procps util-linux binutils
