#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs
# every test through ctest. Its last lines are ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
echo "keyd: building (RelWithDebInfo) in build/" >&2
bash scripts/build.sh
cd build
exec ctest --output-on-failure --timeout 600 -j2
