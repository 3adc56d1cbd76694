#!/usr/bin/env bash
# traceless-node's tests/operators_guide.rs runs docs/nginx-traceless.conf in a
# real nginx (TLS in front of a node), makes its certificate with openssl,
# fetches through it with curl, and checks docs/traceless-node.service with
# systemd-analyze.
set -euo pipefail
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
