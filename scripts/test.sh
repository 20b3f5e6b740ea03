#!/usr/bin/env bash
# The README's test command: installs what is missing, builds keyd twice
# (Debug with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/, and RelWithDebInfo in build/), and runs every test through
# ctest in each. The sanitizer run goes first. The normal run also checks
# fresh machines: the ctest tests fresh_debian12 and fresh_debian13 run
# scripts/fresh-machine.sh for Debian 12 (bookworm) and 13 (trixie), each
# alone (they need root and the apt mirror, and are skipped without root).
# The last lines are the normal run's ctest summary. The exit status fails
# if either run failed. CI (.ci/run) runs this command as it is.
#
#   bash scripts/test.sh [--no-sanitizers] [--no-fresh-roots]
#
#   --no-sanitizers   no ASan+UBSan build and run, only build/
#   --no-fresh-roots  build/ without the fresh-machine tests
#                     (CMake option KEYD_FRESH_ROOTS=OFF)
#
# fresh-machine.sh runs it inside each fresh root with both switches.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash scripts/test.sh [--no-sanitizers] [--no-fresh-roots]
  --no-sanitizers   skip the ASan+UBSan build (build-asan/) and its test run
  --no-fresh-roots  leave out the fresh Debian 12 and 13 root filesystem tests
                    (configures build/ with -DKEYD_FRESH_ROOTS=OFF)
  --help            print this and exit
EOF
}

sanitizers=1
fresh=ON
for arg in "$@"; do
  case $arg in
    --no-sanitizers) sanitizers=0 ;;
    --no-fresh-roots) fresh=OFF ;;
    -h | --help) usage; exit 0 ;;
    *)
      echo "keyd: test.sh: unknown argument '$arg'" >&2
      usage >&2
      exit 2
      ;;
  esac
done

cd "$(dirname "$0")/.."
bash scripts/deps.sh

if ((sanitizers)); then
  echo "keyd: building with ASan+UBSan (Debug) in build-asan/" >&2
  KEYD_BUILD=build-asan KEYD_BUILD_TYPE=Debug bash scripts/build.sh -DKEYD_SANITIZE=ON \
    -DKEYD_FRESH_ROOTS=OFF
fi
echo "keyd: building (RelWithDebInfo) in build/" >&2
bash scripts/build.sh -DKEYD_FRESH_ROOTS="$fresh"
if [[ $fresh == ON ]]; then
  dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
  if ((dirty > 0)); then
    echo "keyd: the fresh roots test the committed HEAD: $dirty changed files here are not in it" >&2
  fi
fi

asan=0
if ((sanitizers)); then
  echo "keyd: running the tests under ASan+UBSan" >&2
  (cd build-asan && ctest --output-on-failure --timeout 600 -j2) || asan=$?
fi
if [[ $fresh == ON ]]; then
  echo "keyd: running the tests, with the fresh Debian 12 and 13 roots (logs: /var/tmp/keyd-fresh-*)" >&2
else
  echo "keyd: running the tests" >&2
fi
normal=0
(cd build && ctest --output-on-failure --timeout 600 -j2) || normal=$?
if [[ $asan -ne 0 ]]; then
  echo "keyd: the ASan+UBSan run failed (see above)" >&2
  exit 1
fi
exit $normal
