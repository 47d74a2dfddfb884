#!/usr/bin/env bash
# Build the N-API addon against the headers of the node that runs the build (Debian's node keeps
# them under /usr/include/node, the official images under /usr/local/include/node). No download.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
exec npx --no-install node-gyp rebuild --silent --directory native --nodedir="$nodedir"
