#!/usr/bin/env bash
# traceless-node's tests/metrics_exposition.rs reads /metrics back with a real
# OpenMetrics parser: the Python prometheus_client package's (Debian's, for the
# system interpreter /usr/bin/python3).
set -euo pipefail
if ! /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-prometheus-client
fi
