#!/usr/bin/env bash
# Configures and builds keyd in build/ (or $KEYD_BUILD, with the extra CMake
# arguments given). Used by the README's run and test commands.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${KEYD_BUILD:-build}
type=${KEYD_BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" -- --no-print-directory >/dev/null
