#!/usr/bin/env bash
# The cluster load benchmark beside etcd, interleaved: for each client count, QuorumLM's points
# and then etcd's, back to back, BENCH_ROUNDS times (default 1), so that both systems are measured
# on the same minute of this machine. A shared VM's speed moves by tens of percent within an hour,
# which a run of every QuorumLM point followed by every etcd point turns into a skewed ratio.
#
# Needs target/release/load and target/release/etcd_load (the Makefile's bench-etcd builds both)
# and etcd on the PATH. Settings: BENCH_CLIENTS (default 1,8,32,128), BENCH_ROUNDS, and the load
# generators' own (BENCH_SECS, BENCH_WARMUP_SECS). Writes every round's JSON under
# target/bench/rounds/, the last round also as target/bench/quorumlm.json and etcd.json, and
# prints the comparison (scripts/bench-compare.py): per point the median of the rounds' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${BENCH_ROUNDS:-1}"
clients="${BENCH_CLIENTS:-1,8,32,128}"
dir=target/bench/rounds
rm -rf "$dir"
mkdir -p "$dir"

merge() { # merge OUT IN... : one JSON with the points of every IN, in order
    python3 - "$@" <<'EOF'
import json, sys
out, parts = sys.argv[1], sys.argv[2:]
docs = [json.load(open(p)) for p in parts]
merged = {"benchmark": docs[0]["benchmark"], "points": [pt for d in docs for pt in d["points"]]}
with open(out, "w") as f:
    json.dump(merged, f, indent=2)
    f.write("\n")
EOF
}

pairs=()
for round in $(seq 1 "$rounds"); do
    q_parts=() e_parts=()
    for c in ${clients//,/ }; do
        echo "round $round/$rounds, C = $c" >&2
        BENCH_CLIENTS="$c" BENCH_JSON="$dir/q-$round-$c.json" target/release/load
        BENCH_CLIENTS="$c" BENCH_JSON="$dir/e-$round-$c.json" target/release/etcd_load
        q_parts+=("$dir/q-$round-$c.json") e_parts+=("$dir/e-$round-$c.json")
    done
    merge "$dir/quorumlm-$round.json" "${q_parts[@]}"
    merge "$dir/etcd-$round.json" "${e_parts[@]}"
    pairs+=("$dir/quorumlm-$round.json" "$dir/etcd-$round.json")
done
cp "$dir/quorumlm-$rounds.json" target/bench/quorumlm.json
cp "$dir/etcd-$rounds.json" target/bench/etcd.json
python3 scripts/bench-compare.py "${pairs[@]}"
