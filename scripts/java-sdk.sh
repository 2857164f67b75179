#!/usr/bin/env bash
# The Java binding (src/java), built with plain javac and jar (no Maven or Gradle):
#   $TARGET/java/quorumlm.jar   the binding (com.quorumlm), from src/java/src/main/java
#   $TARGET/java/examples       the example program (src/java/examples/Checkout.java)
#   $TARGET/debug/libquorumlm.so  the C library it loads (cargo build -p qlm-capi)
# where $TARGET is $CARGO_TARGET_DIR, or target. JNA comes from Debian's libjna-java
# (/usr/share/java/jna.jar, or $JNA_JAR), installed with apt-get when missing, as
# scripts/test-deps.sh installs the other test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-target}
jna=${JNA_JAR:-/usr/share/java/jna.jar}

for tool in javac jar; do
    if ! command -v "$tool" >/dev/null; then
        echo "java-sdk: $tool not found; please install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)" >&2
        exit 1
    fi
done
if [ ! -f "$jna" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt=(apt-get)
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        apt=(sudo apt-get)
    else
        echo "java-sdk: $jna is missing; please install libjna-java (Debian: apt-get install libjna-java)" >&2
        exit 1
    fi
    echo "java-sdk: installing libjna-java"
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq libjna-java >/dev/null
fi

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
