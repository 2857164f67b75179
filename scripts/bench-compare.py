#!/usr/bin/env python3
"""Prints QuorumLM's and etcd's load-benchmark points side by side, with ratios.

Usage: bench-compare.py QUORUMLM.json ETCD.json [QUORUMLM2.json ETCD2.json ...]

Each pair is one round (written by `target/release/load` and `target/release/etcd_load`, as
`make bench-etcd` runs them). With one round, the table shows its figures. With several, each
row shows per point the median of the rounds' ops/s and p99 for each system, the median of the
rounds' ratios (each round's QuorumLM figure over the same round's etcd figure), and the range
of those ratios.
"""
import json
import statistics
import sys


def points(path):
    with open(path) as f:
        return {(p["clients"], p["seats"]): p for p in json.load(f)["points"]}


def ratio(a, b):
    return a / b if b else float("inf")


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    rounds = [(points(q), points(e)) for q, e in zip(args[::2], args[1::2])]
    keys = sorted(set.intersection(*(set(q) & set(e) for q, e in rounds)))
    several = len(rounds) > 1
    if several:
        print(f"Medians of {len(rounds)} rounds (each ratio within one round, then the median).")
    print("| C | N | QuorumLM ops/s | etcd ops/s | ratio | QuorumLM p99 ms | etcd p99 ms | p99 ratio |"
          + (" ratio range |" if several else ""))
    print("|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if several else ""))
    for key in keys:
        pairs = [(q[key], e[key]) for q, e in rounds]
        med = lambda f: statistics.median(f(q, e) for q, e in pairs)  # noqa: E731
        ops_q = med(lambda q, e: q["ops_per_sec"])
        ops_e = med(lambda q, e: e["ops_per_sec"])
        p99_q = med(lambda q, e: q["checkout_p99_ms"])
        p99_e = med(lambda q, e: e["checkout_p99_ms"])
        ratios = [ratio(q["ops_per_sec"], e["ops_per_sec"]) for q, e in pairs]
        p99s = [ratio(q["checkout_p99_ms"], e["checkout_p99_ms"]) for q, e in pairs]
        row = (f"| {key[0]} | {key[1]} | {ops_q:.0f} | {ops_e:.0f} | "
               f"{statistics.median(ratios):.2f}x | {p99_q:.2f} | {p99_e:.2f} | "
               f"{statistics.median(p99s):.2f} |")
        if several:
            row += f" {min(ratios):.2f}-{max(ratios):.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
