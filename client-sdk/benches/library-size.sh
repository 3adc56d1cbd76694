#!/usr/bin/env bash
# Stripped size of the SDK's x86_64 shared library (release profile) without
# and with the `client` feature, and their ratio. Run from anywhere:
#   bash client-sdk/benches/library-size.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp -d)"
lib="target/release/libtraceless_sdk.so"
cargo build --release -p traceless-sdk --lib >&2
strip -o "$out/plain.so" "$lib"
cargo build --release -p traceless-sdk --lib --features client >&2
strip -o "$out/client.so" "$lib"
plain=$(stat -c %s "$out/plain.so")
client=$(stat -c %s "$out/client.so")
echo "stripped libtraceless_sdk.so, x86_64 release: without client $plain bytes, with client $client bytes, ratio $(awk "BEGIN{printf \"%.2f\", $client/$plain}")"
rm -r "$out"
