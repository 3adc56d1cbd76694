#!/usr/bin/env bash
# Keeps protocol-spec/openapi.yaml and the node's HTTP API agreeing:
# validates the document, then runs a bounded schemathesis pass (every check, a
# fixed number of examples per operation, fixed seed) against a live gateway and
# a live relay started from the built binary on 127.0.0.1. Fails on any failure.
# Needs .ci/install-api-checks.sh. Usage: node/tests/api-checks.sh [examples]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="$(realpath "${API_CHECKS_VENV:-target/api-checks-venv}")"
EXAMPLES="${1:-${API_CHECKS_EXAMPLES:-40}}"
SPEC=protocol-spec/openapi.yaml

"$VENV/bin/openapi-spec-validator" "$SPEC"

cargo build --quiet -p traceless-node --bin traceless-node
BIN="$PWD/target/debug/traceless-node"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A gateway with token keys, for test.health; its libp2p port fixed so that
# the relay can name it.
mkdir -p "$WORK/gw" "$WORK/relay"
GW_P2P="$(free_port)"
"$BIN" init --out "$WORK/gw/node.toml" >/dev/null
ENTRY="$("$BIN" authority keygen --origin test.health --out "$WORK/gw/authority.key" | grep -v '^#')"
"$BIN" authority token-keygen --epoch 1 --out "$WORK/gw/tokens-1.key" >/dev/null
sed -i -e 's/role = "relay"/role = "gateway"/' \
    -e 's/listen = "127.0.0.1:8080"/listen = "127.0.0.1:0"/' \
    -e "s#/tcp/4001#/tcp/$GW_P2P#" -e "s#/udp/4001#/udp/$(free_port)#" "$WORK/gw/node.toml"
cat >>"$WORK/gw/node.toml" <<TOML
$ENTRY
[gateway]
origin = "test.health"
authority_key_file = "authority.key"
token_keys = [{ epoch = 1, file = "tokens-1.key" }]
uploads_per_minute = 100000
response_delay_ms = 0
TOML
GW_ID="$("$BIN" id --config "$WORK/gw/node.toml" | sed -n 1p)"

# A relay that relays sealed uploads for test.health to that gateway.
"$BIN" init --out "$WORK/relay/node.toml" >/dev/null
sed -i -e 's/listen = "127.0.0.1:8080"/listen = "127.0.0.1:0"/' \
    -e "s#/tcp/4001#/tcp/$(free_port)#" -e "s#/udp/4001#/udp/$(free_port)#" \
    -e "s#^upload_gateways = \[\]#upload_gateways = [{ origin = \"test.health\", address = \"/ip4/127.0.0.1/tcp/$GW_P2P/p2p/$GW_ID\" }]#" \
    "$WORK/relay/node.toml"
echo "$ENTRY" >>"$WORK/relay/node.toml"

# Starts a node and sets the variable named $2 to its HTTP base URL once it
# is up. Runs in this shell, not in a command substitution: the node's PID must
# reach PIDS here, or the cleanup would leave the node running.
start() {
    local dir="$1" var="$2"
    mkfifo "$dir/out"
    RUST_LOG=warn "$BIN" run --config "$dir/node.toml" >"$dir/out" 2>"$dir/log" &
    PIDS+=($!)
    exec {fd}<"$dir/out"
    local line
    read -r -t 30 line <&"$fd"
    cat <&"$fd" >/dev/null &
    PIDS+=($!)
    line="${line#traceless-node: HTTP on }"
    printf -v "$var" '%s' "${line%/}"
}
start "$WORK/gw" GW_URL
start "$WORK/relay" RELAY_URL
echo "== api checks: gateway $GW_URL, relay $RELAY_URL, $EXAMPLES examples per operation"

status=0
for url in "$GW_URL" "$RELAY_URL"; do
    # From the temp dir: schemathesis keeps a cache in its working directory.
    (cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/node/tests/schemathesis.toml" \
        run "$OLDPWD/$SPEC" --url "$url" \
        --max-examples "$EXAMPLES" --seed 1 --generation-database none \
        --no-color) || status=1
done
exit "$status"
