#!/usr/bin/env bash
# `make compose-chaos`: builds the image (incremental) and runs the compose chaos test
# (cluster-tests/src/bin/compose_chaos.rs) against a compose project of its own; that project
# is removed at the end, pass or fail. Exit 0 pass, 1 violations, 2 no Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

export QLM_IMAGE=${QLM_IMAGE:-quorumlm:latest}
IMAGE=$QLM_IMAGE deploy/build-image.sh
cargo build -p cluster-tests --bin compose_chaos
exec target/debug/compose_chaos
