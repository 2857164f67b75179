#!/usr/bin/env python3
"""Prints QuorumLM's and etcd's load-benchmark points side by side, with ratios.

Usage: bench-compare.py QUORUMLM.json ETCD.json   (written by `make bench-load` and
`cargo run -p cluster-tests --features etcd --bin etcd_load`).
"""
import json
import sys


def points(path):
    with open(path) as f:
        return {(p["clients"], p["seats"]): p for p in json.load(f)["points"]}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    qlm, etcd = points(sys.argv[1]), points(sys.argv[2])
    print("| C | N | QuorumLM ops/s | etcd ops/s | ratio | QuorumLM p99 ms | etcd p99 ms | p99 ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(set(qlm) & set(etcd)):
        q, e = qlm[key], etcd[key]
        ratio = q["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("inf")
        p99 = q["checkout_p99_ms"] / e["checkout_p99_ms"] if e["checkout_p99_ms"] else float("inf")
        print(f"| {key[0]} | {key[1]} | {q['ops_per_sec']:.0f} | {e['ops_per_sec']:.0f} | "
              f"{ratio:.2f}x | {q['checkout_p99_ms']:.2f} | {e['checkout_p99_ms']:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
