#!/usr/bin/env bash
# run-pipeline.sh: makes an ECDSA P-256 key on a fresh SoftHSM2 token in a
# temporary directory and runs tests/bench/pipeline's arrangements in
# turn, ROUNDS times (inproc, sync, pipe, pipe2, inproc, ...), printing
# one markdown row a run and the medians. docs/benchmarks.md, "Token
# processes", holds a run.
#
# usage: tests/bench/run-pipeline.sh [BUILD_DIR]   (default: build)
#   PIPE_ROUNDS    rounds (default 4)
#   PIPE_DURATION  seconds a run (default 4)
#   PIPE_CLIENTS   client threads (default 2)
#   PIPE_MODES     default "inproc sync pipe pipe2"
#   PIPE_WORK      µs of CPU the socket-facing side spends per request, a
#                  stand-in for keyd's own work (default 0)
#   PIPE_COPY      1: sign with a session copy of the key, as keyd does
#                  (default 1); 0: with the token object
#   SOFTHSM_MODULE default /usr/lib/softhsm/libsofthsm2.so
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
PIPELINE=$BUILD/tests/pipeline
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
ROUNDS=${PIPE_ROUNDS:-4}
DURATION=${PIPE_DURATION:-4}
CLIENTS=${PIPE_CLIENTS:-2}
MODES=${PIPE_MODES:-inproc sync pipe pipe2}
COPY=${PIPE_COPY:-1}
WORK=${PIPE_WORK:-0}
K=(); [[ $COPY == 1 ]] && K=(-k)

for f in "$PIPELINE" "$SOFTHSM_MODULE"; do
  [[ -e $f ]] || { echo "run-pipeline: $f is missing (build first)" >&2; exit 1; }
done
T=$(mktemp -d /tmp/keyd-pipeline.XXXXXX)
trap 'rm -rf "$T"' EXIT
export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label bench --login --pin 1234 \
  --keypairgen --key-type EC:prime256v1 --label ec --id 01 --sensitive \
  --usage-sign >/dev/null
printf '1234\n' > "$T/pin"
chmod 0400 "$T/pin"

echo "## pipeline, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "\`PIPE_ROUNDS=$ROUNDS PIPE_DURATION=$DURATION PIPE_CLIENTS=$CLIENTS PIPE_COPY=$COPY PIPE_WORK=$WORK tests/bench/run-pipeline.sh\`"
echo
echo "| round | mode | clients | signatures/s | client CPU µs/sig | answering CPU µs/sig |"
echo "|---:|---|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    row=$("$PIPELINE" -M "$SOFTHSM_MODULE" -t bench -P "$T/pin" -l ec -m "$m" \
      -c "$CLIENTS" -d "$DURATION" -w "$WORK" "${K[@]}")
    echo "| $r $row"
    echo "$m ${row#*|}" >> "$T/rows"
  done
done
echo
echo "| mode | median signatures/s | × inproc |"
echo "|---|---:|---:|"
for m in $MODES; do
  awk -v m="$m" -F'|' '$1 ~ "^"m" " { print $3 + 0 }' "$T/rows" | sort -n > "$T/m.$m"
done
med() { awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }' "$1"; }
base=$(med "$T/m.inproc" 2>/dev/null || echo 0)
for m in $MODES; do
  v=$(med "$T/m.$m")
  awk -v m="$m" -v v="$v" -v b="$base" 'BEGIN { printf "| %s | %.0f | %s |\n", m, v, (b > 0 ? sprintf("%.2f", v / b) : "-") }'
done
