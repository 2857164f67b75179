#!/usr/bin/env bash
# What `make test` needs beyond Rust and make, installed when missing (Debian packages):
#   chromium  headless browser for the dashboard test (cluster-tests/tests/http.rs)
#   strace    proves the fsync before each acknowledgement (src/raft/tests/raft_store_durability.rs;
#             that test is skipped with a notice without it)
#   g++       compiles the C header as C++ (src/capi/tests/header.rs; cc, for C, is Rust's linker)
#   valgrind  runs the C example against a cluster with leak checks
#             (cluster-tests/tests/sdk_c.rs; skipped with a notice without it)
#   gcc       the C example and the C test driver (and Rust's own linker)
#   python3-venv  the fresh venv the Python wheel is tested in, and maturin's
#   libjna-java, default-jdk-headless  the Java binding and its test (src/java,
#             cluster-tests/tests/sdk_java.rs, which fails with the same instructions without them)
#   libfaketime  moves one qlmd's wall clock (cluster-tests/tests/clock.rs, which fails with
#             the same instructions without it)
# Runs apt-get as root, or through sudo when there is one. Where neither works it says what to
# install and goes on: the test that needs the tool then fails (Chromium) or is skipped
# (strace) with the same instructions.
set -euo pipefail

missing=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "${CHROMIUM:-}" ] \
    || missing+=(chromium)
command -v strace >/dev/null || missing+=(strace)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v valgrind >/dev/null || missing+=(valgrind)
[ -f "${JNA_JAR:-/usr/share/java/jna.jar}" ] || missing+=(libjna-java)
command -v javac >/dev/null || missing+=(default-jdk-headless)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
[ -n "$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null)" ] \
    || missing+=(libfaketime)
# `--only PKG...`: just those of the missing packages (a build script that needs one tool).
if [ "${1:-}" = "--only" ]; then
    shift
    wanted=()
    for package in "${missing[@]}"; do
        for only in "$@"; do [ "$package" = "$only" ] && wanted+=("$package"); done
    done
    missing=("${wanted[@]+"${wanted[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
else
    echo "test-deps: please install ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "test-deps: no apt-get here; please install ${missing[*]} with your package manager" >&2
    exit 0
fi
echo "test-deps: installing ${missing[*]}"
"${apt[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
