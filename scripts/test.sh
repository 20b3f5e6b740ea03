#!/usr/bin/env bash
# The README's test command: installs what is missing, builds keyd twice
# (RelWithDebInfo in build/, and Debug with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/), and runs every test through
# ctest in each. The sanitizer run goes first; the last lines are the
# normal run's ctest summary. The exit status fails if either run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

echo "keyd: building with ASan+UBSan (Debug) in build-asan/" >&2
KEYD_BUILD=build-asan KEYD_BUILD_TYPE=Debug bash scripts/build.sh -DKEYD_SANITIZE=ON
echo "keyd: building (RelWithDebInfo) in build/" >&2
bash scripts/build.sh

echo "keyd: running the tests under ASan+UBSan" >&2
asan=0
(cd build-asan && ctest --output-on-failure --timeout 600 -j2) || asan=$?
echo "keyd: running the tests" >&2
normal=0
(cd build && ctest --output-on-failure --timeout 600 -j2) || normal=$?
if [[ $asan -ne 0 ]]; then
  echo "keyd: the ASan+UBSan run failed (see above)" >&2
  exit 1
fi
exit $normal
