#!/bin/sh
# Runs the C example (examples/c/checkout.c, built by `make c-example`) under valgrind and
# fails on a definite leak or a memory error. Without a cluster it takes the unreachable
# path: a client, a session that cannot open, the error printed, everything freed (the
# example exits 4; valgrind's own failure is exit 1). With QLM_LICENSE set to a running
# cluster it takes the whole path: grant, work, checkin, close. The full path against a
# real 3-process cluster is also a test: cluster-tests/tests/sdk_c.rs
# (the_example_under_valgrind_loses_no_memory).
set -eu

dir=${CAPI_LIB_DIR:-target/debug}
example="$dir/examples-c/checkout"
command -v valgrind >/dev/null || { echo "c-valgrind: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$example" ] || { echo "c-valgrind: $example is missing: make c-example" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
QLM_LICENSE=${QLM_LICENSE:-127.0.0.1:1} valgrind --leak-check=full --errors-for-leak-kinds=definite \
    --error-exitcode=1 "$example" "${1:-vhdl-editor}" "" 1 2>"$log" || status=$?
grep -E "definitely lost|indirectly lost|possibly lost|ERROR SUMMARY|checkout:" "$log" || true
if [ "$status" -eq 1 ]; then
    echo "c-valgrind: valgrind found errors (full log above the summary):" >&2
    cat "$log" >&2
    exit 1
fi
grep -q "definitely lost: 0 bytes\|no leaks are possible" "$log" ||
    { echo "c-valgrind: no leak summary" >&2; cat "$log" >&2; exit 1; }
echo "c-valgrind: no definite leak, no memory error (the example exited $status)"
