#!/usr/bin/env bash
# Makes a demo vendor key, a demo license signed with it, and a demo admin token for the
# compose cluster, in DIR (default deploy/demo, git-ignored), unless they exist. It runs `qlm`
# from the image (IMAGE, default quorumlm:latest), so nothing but Docker is needed.
#
# Real deployments put the vendor's license file and public key there instead (same names:
# license.lic, keys/vendor.pub) and an admin token of their own (admin.token).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-${QLM_DEMO_DIR:-deploy/demo}}
IMAGE=${IMAGE:-quorumlm:latest}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

qlm() {
    docker run --rm --network none --user "$(id -u):$(id -g)" -v "$DIR:/demo" -w /demo \
        --entrypoint /usr/local/bin/qlm "$IMAGE" "$@"
}

if [ ! -f "$DIR/keys/vendor.key" ]; then
    qlm license keygen --out /demo/keys
fi
if [ ! -f "$DIR/license.lic" ]; then
    cat > "$DIR/license.unsigned.lic" <<'LIC'
# QuorumLM demo license for the compose cluster (signed with the demo key in keys/)
FEATURE vhdl-editor vendor=demo version=4.0 count=25 expires=permanent \
        customer="Demo Corp" dup_group=user_host
FEATURE simulator vendor=demo version=2.1 tokens=100 expires=permanent
FEATURE synthesis vendor=demo version=1.0 count=2 expires=permanent notes="for the queue demo"
FEATURE chaos-seats vendor=demo version=1.0 count=3 expires=permanent notes="compose chaos test"
LIC
    qlm license sign --key /demo/keys/vendor.key /demo/license.unsigned.lic -o /demo/license.lic
fi
if [ ! -f "$DIR/admin.token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/admin.token"
fi
# The nodes run as uid 10001 and read these files through read-only bind mounts: the public
# key, the license and (on this demo only) the token must be readable by that user. A real
# admin token file belongs to that user with mode 0400 (see docs/DEPLOY.md).
chmod 0644 "$DIR/license.lic" "$DIR/keys/vendor.pub" "$DIR/admin.token"
chmod 0755 "$DIR" "$DIR/keys"
echo "demo license, vendor key and admin token in $DIR"
