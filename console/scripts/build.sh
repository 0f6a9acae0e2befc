#!/usr/bin/env bash
# Installs the console's pinned dependencies and builds it into console/src/steun_console/static/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
