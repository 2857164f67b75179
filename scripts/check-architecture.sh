#!/bin/sh
# Checks that the workspace's crate graph is the one ARCHITECTURE.md draws: for every member,
# its normal (not dev) dependencies on other members, as `cargo tree` reports them, must be
# exactly the line the document gives it between the `crate-graph` markers. A new edge (a back
# edge above all) fails until the document shows it, and so does an edge the document keeps
# after the code dropped it. Needs only cargo and a POSIX shell.
set -eu

doc=${1:-ARCHITECTURE.md}
cargo=${CARGO:-cargo}

# The document's graph: "crate -> dep dep ...", one line per crate, sorted.
drawn=$(awk '/<!-- crate-graph:start -->/{on=1; next} /<!-- crate-graph:end -->/{on=0} on' "$doc" |
    grep -- '->' |
    while read -r crate arrow deps; do
        printf '%s ->' "$crate"
        for dep in $deps; do printf '\n%s' "$dep"; done | sort | tr '\n' ' ' | sed 's/ *$//'
        echo
    done | sed 's/-> */-> /; s/ *$//' | sort)

if [ -z "$drawn" ]; then
    echo "check-architecture: $doc has no crate graph between <!-- crate-graph:start --> and <!-- crate-graph:end -->" >&2
    exit 1
fi

# The members, and for each its direct normal dependencies (cargo tree reads cargo metadata).
members=$($cargo tree --workspace --depth 0 --prefix none | awk 'NF {print $1}' | sort -u)
pattern=$(echo "$members" | tr '\n' '|' | sed 's/|$//')

actual=$(for crate in $members; do
    deps=$($cargo tree -p "$crate" -e normal --depth 1 --prefix none |
        tail -n +2 | awk '{print $1}' | grep -Ex "$pattern" | sort -u | tr '\n' ' ' | sed 's/ *$//')
    echo "$crate -> $deps" | sed 's/ *$//'
done | sort)

if [ "$drawn" != "$actual" ]; then
    echo "check-architecture: the crate graph differs from $doc's (- drawn, + cargo):" >&2
    printf '%s\n' "$drawn" >/tmp/qlm-arch-drawn.$$
    printf '%s\n' "$actual" >/tmp/qlm-arch-actual.$$
    diff -u /tmp/qlm-arch-drawn.$$ /tmp/qlm-arch-actual.$$ | tail -n +3 >&2 || true
    rm -f /tmp/qlm-arch-drawn.$$ /tmp/qlm-arch-actual.$$
    exit 1
fi
echo "check-architecture: the crate graph is the one $doc draws ($(echo "$actual" | wc -l) crates)"
