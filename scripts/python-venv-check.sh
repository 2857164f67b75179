#!/bin/sh
# Installs the quorumlm wheel from <target>/wheels into a fresh venv, imports it and runs the
# package's offline tests there (no server needed). Build the wheel first: make python-wheel.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}

set -- "$target"/wheels/quorumlm-*.whl
if [ ! -f "$1" ]; then
    echo "python-venv-check: no wheel in $target/wheels; run make python-wheel first" >&2
    exit 1
fi
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$1"
cd "$venv"
"$venv/bin/python" -c 'import quorumlm; print("quorumlm", quorumlm.__version__, "imports from", quorumlm.__file__)'
"$venv/bin/python" "$root/src/python/tests/test_offline.py" -v
