#!/usr/bin/env bash
# `make image`: builds the QuorumLM container image without any registry.
#
# 1. Compiles qlmd and qlm as static binaries (glibc with crt-static, its own target dir so the
#    normal build is left alone) and checks that they are static.
# 2. Lays out the build context: the binaries, a passwd/group with the non-root user qlm
#    (uid 10001), an nsswitch.conf, and the data directory.
# 3. docker build FROM scratch, and prints the image's size.
#
# IMAGE (default quorumlm:latest) names the image; SKIP_CARGO=1 reuses the binaries built.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-quorumlm:latest}
TRIPLE=x86_64-unknown-linux-gnu
STATIC_TARGET=${STATIC_TARGET:-target/static}
BIN_DIR="$STATIC_TARGET/$TRIPLE/release"
CONTEXT=target/image/context
QLM_UID=10001

if [ "${SKIP_CARGO:-0}" != 1 ]; then
    echo "== static build (RUSTFLAGS=-C target-feature=+crt-static, --target $TRIPLE)"
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$STATIC_TARGET" \
        cargo build --release --locked --target "$TRIPLE" -p qlm-server -p qlm-cli
fi

for bin in qlmd qlm; do
    # A static executable has no program interpreter (PT_INTERP): nothing to load at run time.
    if ldd "$BIN_DIR/$bin" 2>&1 | grep -q '=>'; then
        echo "build-image: $BIN_DIR/$bin is dynamically linked; it cannot run FROM scratch" >&2
        ldd "$BIN_DIR/$bin" >&2
        exit 1
    fi
done

echo "== build context $CONTEXT"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/tmp" "$CONTEXT/data"
install -m 0755 -s "$BIN_DIR/qlmd" "$BIN_DIR/qlm" "$CONTEXT/rootfs/usr/local/bin/"
cat > "$CONTEXT/rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/:/sbin/nologin
qlm:x:$QLM_UID:$QLM_UID:QuorumLM license server:/var/lib/qlm:/sbin/nologin
PASSWD
cat > "$CONTEXT/rootfs/etc/group" <<GROUP
root:x:0:
qlm:x:$QLM_UID:
GROUP
# glibc's resolver, linked in statically: /etc/hosts first, then the DNS server Docker or
# Kubernetes writes into /etc/resolv.conf (compose service names, headless Service names).
printf 'hosts: files dns\n' > "$CONTEXT/rootfs/etc/nsswitch.conf"
chmod 1777 "$CONTEXT/rootfs/tmp"
cp deploy/Dockerfile "$CONTEXT/Dockerfile"

echo "== docker build $IMAGE"
docker build --quiet -t "$IMAGE" "$CONTEXT" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
printf 'image %s: %s bytes (%s MiB); qlmd %s bytes, qlm %s bytes\n' "$IMAGE" "$size" \
    "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')" \
    "$(stat -c %s "$CONTEXT/rootfs/usr/local/bin/qlmd")" "$(stat -c %s "$CONTEXT/rootfs/usr/local/bin/qlm")"
