#!/usr/bin/env bash
# traceless-sim net (simulator/tests/net.rs): `ip` and `tc` (iproute2) for network
# namespaces and veth pairs, `mount` for the disk-full tmpfs, and libfaketime
# for per-node clock skew. Without root the tests fall back to loopback and skip
# the disk-full and clock-skew checks, saying so.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
    else
        echo "install-sim-net: not root, cannot install ${need[*]}: net tests use their fallbacks"
    fi
fi
