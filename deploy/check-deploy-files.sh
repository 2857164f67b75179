#!/usr/bin/env bash
# `make deploy-check`: checks the deployment files offline.
#
#   systemd     systemd-analyze verify of qlmd@.service (an instance, with the binary path and
#               env file of this checkout; any warning fails), the hardening options present,
#               and the three env files agreeing on QLM_INITIAL_CLUSTER
#   kubernetes  kubernetes-validate --strict (PyPI; ships the API schemas, runs offline) and
#               deploy/kubernetes/check_fields.py (the fields QuorumLM needs)
#   compose     docker compose config (when a compose is installed)
#
# Installs what is missing: systemd (apt) for systemd-analyze, a Python venv in
# target/deploy-check-venv with kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

echo "== systemd"
if ! command -v systemd-analyze >/dev/null; then
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
unit=deploy/systemd/qlmd@.service
qlmd=$(ls target/debug/qlmd target/release/qlmd target/static/*/release/qlmd 2>/dev/null | head -1 || true)
if [ -z "$qlmd" ]; then
    cargo build --bin qlmd
    qlmd=target/debug/qlmd
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|^ExecStart=/usr/local/bin/qlmd|ExecStart=$PWD/$qlmd|" \
    -e "s|^EnvironmentFile=/etc/quorumlm/%i.env|EnvironmentFile=$PWD/deploy/systemd/%i.env|" \
    "$unit" > "$tmp/qlmd@node1.service"
out=$(systemd-analyze verify "$tmp/qlmd@node1.service" 2>&1) || { echo "$out"; fail=1; }
if [ -n "$out" ]; then echo "$out" | sed 's/^/  /'; echo "systemd-analyze verify warned"; fail=1; fi
for key in User=qlm ProtectSystem=strict 'ReadWritePaths=/var/lib/quorumlm/%i' NoNewPrivileges=yes \
           PrivateTmp=yes Restart=on-failure LimitNOFILE= 'EnvironmentFile=/etc/quorumlm/%i.env' \
           CapabilityBoundingSet=; do
    grep -q "^$key" "$unit" || { echo "$unit: no $key"; fail=1; }
done
clusters=$(grep -h '^QLM_INITIAL_CLUSTER=' deploy/systemd/node*.env | sort -u | wc -l)
ids=$(grep -h '^QLM_ID=' deploy/systemd/node*.env | sort -u | wc -l)
[ "$clusters" = 1 ] || { echo "the env files disagree on QLM_INITIAL_CLUSTER"; fail=1; }
[ "$ids" = 3 ] || { echo "the env files do not have 3 distinct QLM_ID"; fail=1; }
echo "systemd: verified ($unit, node1..3.env)"

echo "== kubernetes"
venv=target/deploy-check-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q kubernetes-validate
fi
(cd deploy/kubernetes && "$PWD/../../$venv/bin/kubernetes-validate" --strict \
    namespace.yaml services.yaml statefulset.yaml poddisruptionbudget.yaml) || fail=1
"$venv/bin/python" deploy/kubernetes/check_fields.py || fail=1

echo "== compose"
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    compose=()
fi
if [ ${#compose[@]} -gt 0 ]; then
    mkdir -p "$tmp/demo/keys"
    touch "$tmp/demo/license.lic" "$tmp/demo/keys/vendor.pub" "$tmp/demo/admin.token"
    QLM_DEMO_DIR="$tmp/demo" "${compose[@]}" -f deploy/docker-compose.yml -p check config -q || fail=1
    echo "compose: deploy/docker-compose.yml is valid"
else
    echo "compose: no docker compose installed, skipped"
fi

if [ "$fail" != 0 ]; then
    echo "deploy-check: FAILED"
    exit 1
fi
echo "deploy-check: all deployment files pass"
