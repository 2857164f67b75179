#!/usr/bin/env bash
# The Java binding (src/java), built with plain javac and jar (no Maven or Gradle):
#   $TARGET/java/quorumlm.jar   the binding (com.quorumlm), from src/java/src/main/java
#   $TARGET/java/examples       the example program (src/java/examples/Checkout.java)
#   $TARGET/debug/libquorumlm.so  the C library it loads (cargo build -p qlm-capi)
# where $TARGET is $CARGO_TARGET_DIR, or target. JNA comes from Debian's libjna-java
# (/usr/share/java/jna.jar, or $JNA_JAR); scripts/test-deps.sh installs it and a JDK when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-target}
jna=${JNA_JAR:-/usr/share/java/jna.jar}

./scripts/test-deps.sh --only default-jdk-headless libjna-java
for tool in javac jar; do
    command -v "$tool" >/dev/null || { echo "java-sdk: $tool not found; install a JDK 17" >&2; exit 1; }
done
[ -f "$jna" ] || { echo "java-sdk: $jna is missing; install libjna-java" >&2; exit 1; }

out="$target/java"
rm -rf "$out/classes" "$out/examples"
mkdir -p "$out/classes" "$out/examples"
javac -Xlint:all -Werror --release 17 -encoding UTF-8 -cp "$jna" -d "$out/classes" \
    $(find src/java/src/main/java -name '*.java' | sort)
jar --create --file "$out/quorumlm.jar" -C "$out/classes" .
javac -Xlint:all -Werror --release 17 -encoding UTF-8 -cp "$jna:$out/quorumlm.jar" -d "$out/examples" \
    src/java/examples/*.java
"$CARGO" build -p qlm-capi
echo "java-sdk: $out/quorumlm.jar, $out/examples, $target/debug/libquorumlm.so"
