#!/usr/bin/env bash
# `make run`: a local 3-node QuorumLM cluster on loopback with a demo vendor key and a demo
# signed license, both made at the first run under ./run/. Ctrl-C stops all three nodes.
# TLS=1 (`make run TLS=1`) turns on TLS for clients and mutual TLS between the nodes, with a
# demo CA and node certificates made by `qlm cert` under ./run/tls/ (docs/TLS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-run}
BASE_PORT=${BASE_PORT:-7400}
TLS=${TLS:-0}
cargo build --release --bins
BIN=target/release

mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/keys/vendor.key" ]; then
    "$BIN/qlm" license keygen --out "$RUN_DIR/keys"
fi
if [ ! -f "$RUN_DIR/demo.lic" ]; then
    cat > "$RUN_DIR/demo.unsigned.lic" <<'LIC'
# QuorumLM demo license (signed with the demo vendor key in run/keys)
FEATURE vhdl-editor vendor=demo version=4.0 count=25 expires=permanent \
        customer="Demo Corp" dup_group=user_host
FEATURE simulator vendor=demo version=2.1 tokens=100 expires=permanent
FEATURE synthesis vendor=demo version=1.0 count=2 expires=permanent notes="for the queue demo"
LIC
    "$BIN/qlm" license sign --key "$RUN_DIR/keys/vendor.key" "$RUN_DIR/demo.unsigned.lic" \
        -o "$RUN_DIR/demo.lic"
fi

if [ ! -f "$RUN_DIR/admin.token" ]; then
    # A demo admin token for `qlm admin ...` and `qlm cluster ...` (mode 0600).
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN_DIR/admin.token")
fi

peer() { echo "127.0.0.1:$((BASE_PORT + 10 * ($1 - 1) + 1))"; }
client() { echo "127.0.0.1:$((BASE_PORT + 10 * ($1 - 1)))"; }
http() { echo "127.0.0.1:$((BASE_PORT + 10 * ($1 - 1) + 2))"; }
CLUSTER="1=$(peer 1),2=$(peer 2),3=$(peer 3)"

tls_args() { :; }
TLS_HINT=""
if [ "$TLS" = 1 ]; then
    if [ ! -f "$RUN_DIR/tls/ca/ca.pem" ]; then
        "$BIN/qlm" cert ca --out "$RUN_DIR/tls/ca"
        for id in 1 2 3; do
            "$BIN/qlm" cert node --ca "$RUN_DIR/tls/ca" --name "node$id" \
                --host 127.0.0.1,localhost --out "$RUN_DIR/tls"
        done
    fi
    tls_args() {
        local cert="$RUN_DIR/tls/node$1.pem" key="$RUN_DIR/tls/node$1.key"
        echo --tls-cert "$cert" --tls-key "$key" --peer-tls-cert "$cert" --peer-tls-key "$key" \
            --peer-tls-ca "$RUN_DIR/tls/ca/ca.pem"
    }
    TLS_HINT="  export QLM_TLS_CA=$RUN_DIR/tls/ca/ca.pem          # TLS is on: trust the demo CA
"
fi

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping the cluster"
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

for id in 1 2 3; do
    "$BIN/qlmd" --id "$id" --data-dir "$RUN_DIR/node$id" \
        --listen "$(client "$id")" --peer-listen "$(peer "$id")" --http-listen "$(http "$id")" \
        --initial-cluster "$CLUSTER" --license "$RUN_DIR/demo.lic" \
        --vendor-pubkey "$RUN_DIR/keys/vendor.pub" --admin-token-file "$RUN_DIR/admin.token" \
        $(tls_args "$id") >"$RUN_DIR/node$id.log" 2>&1 &
    pids+=($!)
done

SERVERS="$(client 1),$(client 2),$(client 3)"
cat <<TXT

QuorumLM: 3 nodes running (logs in $RUN_DIR/node*.log, data in $RUN_DIR/node*/).

  export QLM_SERVERS=$SERVERS
  export QLM_ADMIN_TOKEN_FILE=$RUN_DIR/admin.token   # for qlm admin ... and qlm cluster ...
$TLS_HINT  $BIN/qlm status
  $BIN/qlm checkout vhdl-editor          # holds a seat until Ctrl-C
  $BIN/qlm run synthesis -- sleep 30     # holds a seat while the command runs

  dashboard: http://$(http 1)/  (every node serves one, with /metrics, /healthz, /readyz)

Ctrl-C stops all three.
TXT
wait
