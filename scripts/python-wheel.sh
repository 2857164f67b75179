#!/bin/sh
# Builds the quorumlm Python wheel (abi3: one wheel for every CPython from 3.8 on) into
# <target>/wheels, replacing the ones there. maturin comes from PATH, else from a venv under
# <target>/python-tools, which is made (pip install maturin) when missing. WHEEL_PROFILE picks
# the cargo profile (release by default; `make test` builds `dev`, which shares the debug build's
# compiled dependencies, so the test run does not compile the client twice).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}
tools=$target/python-tools

if command -v maturin >/dev/null 2>&1; then
    maturin=maturin
else
    maturin=$tools/bin/maturin
    if [ ! -x "$maturin" ]; then
        echo "python-wheel: installing maturin into $tools"
        "$python" -m venv "$tools"
        "$tools/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.9,<2'
    fi
fi

mkdir -p "$target/wheels"
rm -f "$target"/wheels/quorumlm-*.whl
CARGO_TARGET_DIR=$target "$maturin" build --profile "${WHEEL_PROFILE:-release}" --manifest-path "$root/src/python/Cargo.toml" \
    --interpreter "$python" --out "$target/wheels"
ls "$target"/wheels/quorumlm-*.whl
