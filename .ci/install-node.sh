#!/usr/bin/env bash
# traceless-node's tests load the transparency page in a real headless Chromium.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
