#!/usr/bin/env bash
# traceless-sdk's binding tests (tests/tests/bindings.rs) run the generated Kotlin
# on the JVM through JNA and the generated Python: a JDK, JNA and the Kotlin
# compiler (the npm registry's `kotlin-compiler` carries the full compiler; it is
# linked as /usr/local/bin/kotlinc). python3 is on the machine.
set -euo pipefail
missing=()
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
[ -e /usr/share/java/jna.jar ] || missing+=(libjna-java)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
if ! command -v kotlinc >/dev/null; then
    npm install -g --no-audit --no-fund kotlin-compiler@2.4.20
    root="$(npm root -g)/kotlin-compiler"
    chmod +x "$root"/bin/*
    ln -sf "$root/bin/kotlinc" /usr/local/bin/kotlinc
fi
kotlinc -version 2>&1 | tail -1
