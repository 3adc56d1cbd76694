#!/usr/bin/env bash
# The HTTP API ↔ openapi.yaml agreement checks (node/tests/api-checks.sh) need
# openapi-spec-validator and schemathesis from PyPI, in a virtualenv of their own.
set -euo pipefail
VENV="${API_CHECKS_VENV:-target/api-checks-venv}"
if [ ! -x "$VENV/bin/schemathesis" ] || [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet "openapi-spec-validator>=0.7" "schemathesis>=4,<5"
fi
