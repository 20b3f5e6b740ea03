#!/usr/bin/env bash
# run.sh: runs one libFuzzer target of a KEYD_FUZZ=ON build, and folds what
# it found back into the corpus in the tree. docs/fuzzing.md explains.
#
#   tests/fuzz/run.sh fuzz  BUILD_DIR TARGET SECONDS [LIBFUZZER_FLAG...]
#   tests/fuzz/run.sh merge BUILD_DIR TARGET
#
# TARGET is frame_dispatch, slip39, bundle, config or passport. "fuzz" runs
# BUILD_DIR/tests/fuzz_TARGET for SECONDS in one process, reading the
# tree's corpus and writing what it finds to a work corpus; crashes go to
# the artifacts directory. No -jobs: it would start the target again as
# child processes (for -jobs=1 one child, with a parent that only waits),
# and the children of the dispatcher target would share one token and one
# SRTP state_dir, whose lock only one process can hold. To fuzz on more
# cores, start more of these, each with its own KEYD_FUZZ_WORK. "merge" minimises the tree's
# corpus and the work corpus together (-merge=1) and puts the result back in
# the tree: the seeds (seed-*) and the crashers of fixed bugs (regress-*)
# stay as they are, the other files are replaced by the merged set, named
# by their SHA-1 as libFuzzer names them.
#
# Work files go to ${KEYD_FUZZ_WORK:-/tmp/keyd-fuzz-work}/TARGET: corpus/,
# artifacts/ and fuzz.log (libFuzzer's output, with its final statistics).
# frame_dispatch runs under setup_token.sh, which makes its token.
set -euo pipefail

usage() {
  echo "usage: $0 fuzz BUILD_DIR TARGET SECONDS [LIBFUZZER_FLAG...]" >&2
  echo "       $0 merge BUILD_DIR TARGET" >&2
  exit 2
}
[[ $# -ge 3 ]] || usage
cmd=$1 build=$2 target=$3
shift 3
case $target in frame_dispatch|slip39|bundle|config|passport) ;; *) usage ;; esac

S=$(cd "$(dirname "$0")" && pwd)
TREE=$S/corpus/$target
BIN=$build/tests/fuzz_$target
W=${KEYD_FUZZ_WORK:-/tmp/keyd-fuzz-work}/$target
[[ -x $BIN ]] || { echo "$0: $BIN is not built (a KEYD_FUZZ=ON build, make fuzzers)" >&2; exit 1; }
mkdir -p "$W/corpus" "$W/artifacts"

# SoftHSM2's Ed25519 code leaks a few bytes per operation: not keyd's
# (tests/integration/lsan.supp). The suppression needs whole stacks, and
# libcrypto has no frame pointers: hence the slow unwinder, for the target
# that has a token only.
asan=detect_stack_use_after_return=1
wrap=()
if [[ $target == frame_dispatch ]]; then
  asan+=:fast_unwind_on_malloc=0
  wrap=(bash "$S/setup_token.sh")
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-$asan}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$S/../integration/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Share sheets are long, and an Ed25519 message may be 16 KiB (the seed
# one byte over it must not be cut); bundles and configs need less to
# reach every branch.
maxlen=8192
dict=
case $target in
  config) dict=$S/config.dict ;;
  slip39)
    # The fuzzer cannot guess SLIP-0039 words (they are looked up in
    # constant time, so no comparison gives them away): every word is
    # in the dictionary.
    sed 's/.*/"&"/' "$S/../../keyd/backup/slip39_wordlist.txt" >"$W/slip39.dict"
    dict=$W/slip39.dict
    maxlen=16384 ;;
  frame_dispatch) maxlen=20480 ;;
esac
flags=(-print_final_stats=1 -max_len=$maxlen
  -artifact_prefix="$W/artifacts/")
[[ -n $dict ]] && flags+=(-dict="$dict")

case $cmd in
  fuzz)
    [[ $# -ge 1 ]] || usage
    secs=$1
    shift
    echo "fuzz_$target for $secs s; log: $W/fuzz.log"
    rc=0
    "${wrap[@]}" "$BIN" "${flags[@]}" -max_total_time="$secs" "$@" \
      "$W/corpus" "$TREE" >"$W/fuzz.log" 2>&1 || rc=$?
    grep -E '^#[0-9]+.*INITED' "$W/fuzz.log" | tail -n 1 || true
    grep -E '^#[0-9]+' "$W/fuzz.log" | tail -n 1 || true
    grep -E '^(stat::|Done)' "$W/fuzz.log" || true
    ls "$W/artifacts" | sed 's/^/artifact: /'
    exit $rc
    ;;
  merge)
    m=$W/merged
    rm -rf "$m"
    mkdir -p "$m"
    "${wrap[@]}" "$BIN" "${flags[@]}" -merge=1 "$m" "$TREE" "$W/corpus" \
      >"$W/merge.log" 2>&1
    grep -E 'MERGE-OUTER: [0-9]+ new files' "$W/merge.log" || true
    # Keep the seeds and crashers; replace the rest by the merged set
    # minus those.
    declare -A keep
    for f in "$TREE"/seed-* "$TREE"/regress-*; do
      [[ -e $f ]] && keep[$(sha1sum <"$f" | cut -d' ' -f1)]=1
    done
    find "$TREE" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -delete
    for f in "$m"/*; do
      [[ -e $f ]] || continue
      h=$(basename "$f")
      [[ -n ${keep[$h]:-} ]] || cp "$f" "$TREE/$h"
    done
    echo "$target: $(ls "$TREE" | wc -l) files in $TREE"
    ;;
  *) usage ;;
esac
