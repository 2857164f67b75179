#!/usr/bin/env bash
# A flame graph of the servers' hot path under the cluster load benchmark.
#
# Builds qlmd with frame pointers (optimised, with debug info; its own target directory), runs
# the load benchmark against it at one point (FLAME_CLIENTS clients, default 32), records the
# three qlmd processes with perf for FLAME_SECS seconds (default 5) in the middle of the measured
# window, and folds and draws the stacks with inferno. Writes docs/flamegraph.svg (or $1).
#
# Needs perf (Debian: linux-perf) and inferno (`cargo install inferno`); installs inferno when
# missing. FLAME_TARGET_DIR overrides the frame-pointer build's target directory. Run as root,
# or with kernel.perf_event_paranoid <= 1. FLAME_FOLDED=PATH also keeps the folded stacks there.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-docs/flamegraph.svg}"
clients="${FLAME_CLIENTS:-32}"
secs="${FLAME_SECS:-5}"
target="${FLAME_TARGET_DIR:-target/frame-pointers}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v perf >/dev/null || { echo "flamegraph: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno

RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$target" \
    cargo build --profile bench -p qlm-server --bin qlmd
cargo build --release -p cluster-tests --bin load
case "$target" in /*) qlmd="$target/release/qlmd" ;; *) qlmd="$(pwd)/$target/release/qlmd" ;; esac

# The load runs a warm-up of 2 s and a window long enough to record in.
QLMD_BIN="$qlmd" BENCH_CLIENTS="$clients" BENCH_WARMUP_SECS=2 BENCH_SECS=$((secs + 6)) \
    BENCH_JSON="$work/load.json" target/release/load >"$work/load.out" 2>&1 &
load=$!
sleep 5
pids="$(pgrep -d, -f "^$qlmd --id" || true)"
if [ -z "$pids" ]; then
    kill "$load" 2>/dev/null || true
    echo "flamegraph: no qlmd process found" >&2
    cat "$work/load.out" >&2
    exit 1
fi
perf record -F 999 -g -p "$pids" -o "$work/perf.data" -- sleep "$secs"
wait "$load" || true
grep 'C=' "$work/load.out" | head -n1

perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
[ -n "${FLAME_FOLDED:-}" ] && cp "$work/folded" "$FLAME_FOLDED"
inferno-flamegraph --title "qlmd x3 under checkout+checkin load, C=$clients" \
    --width 1600 <"$work/folded" >"$out"
echo "wrote $out ($(wc -l <"$work/folded") distinct stacks)"
