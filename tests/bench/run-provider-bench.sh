#!/usr/bin/env bash
# run-provider-bench.sh: benchmarks keyd's OpenSSL provider (keyd.so) on a
# fresh SoftHSM2 token in a temporary directory, with keyd in its default
# settings (audit log on, audit_sync = interval). Prints markdown for
# docs/benchmarks.md:
#   1. signatures per second, ECDSA P-256 over a 1 KiB message, through
#      the provider (EVP_DigestSign) against libkeyd's keyd_sign of the
#      same work, at 1 and 2 threads (provider-bench, alternating);
#   2. full TLS 1.3 handshakes per second (openssl s_time -new against
#      openssl s_server, ECDSA P-256) and the server's CPU per handshake,
#      through A: keyd's provider, B: pkcs11-provider over keyd-pkcs11.so,
#      C: pkcs11-provider over SoftHSM2 in the server's process, D: a PEM
#      key; measured A B C D, A B C D, ... and the median given. B and C
#      need pkcs11-provider (Debian 13); without it they are left out.
#
# usage: tests/bench/run-provider-bench.sh [BUILD_DIR]   (default: build)
#   BENCH_DURATION  seconds per measurement (default 5)
#   BENCH_ROUNDS    rounds (default 3)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
KEYD=$BUILD/keyd/keyd
BENCH=$BUILD/tests/provider-bench
PROVDIR=$BUILD/client/provider
KEYD_PKCS11=$BUILD/client/pkcs11/keyd-pkcs11.so
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
TOKEN=bench
PIN=1234

for f in "$KEYD" "$BENCH" "$PROVDIR/keyd.so" "$KEYD_PKCS11" "$SOFTHSM_MODULE"; do
  [[ -e $f ]] || { echo "run-provider-bench: $f is missing (build first)" >&2; exit 1; }
done
P11PROV=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')/pkcs11.so

T=$(mktemp -d /tmp/keyd-pbench.XXXXXX)
chmod 755 "$T"
KEYD_PID= SRV_PID=
cleanup() {
  local p
  for p in $SRV_PID $KEYD_PID; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT
die() { echo "run-provider-bench: $*" >&2; exit 1; }

export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens" "$T/run" "$T/state"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label $TOKEN --pin $PIN --so-pin 5678 >/dev/null
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label $TOKEN --login --pin $PIN \
  --keypairgen --key-type EC:prime256v1 --label ec --id 01 --sensitive --usage-sign >/dev/null
printf '%s\n' $PIN > "$T/pin"
chmod 0400 "$T/pin"
cat > "$T/keyd.conf" <<CONF
[keyd]
socket = $T/run/keyd.sock
module = $SOFTHSM_MODULE
token = pkcs11:token=$TOKEN
pin_file = $T/pin
audit_log = $T/audit.jsonl
state_dir = $T/state

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client bench]
uid = $(id -u)
keys = ec
ops = sign
CONF
chmod 0600 "$T/keyd.conf"
[[ $(id -u) -eq 0 ]] || export KEYD_DAEMON_USER=$(id -un)
"$KEYD" -c "$T/keyd.conf" > "$T/keyd.log" 2>&1 &
KEYD_PID=$!
for _ in $(seq 100); do
  grep -q serving "$T/keyd.log" && break
  kill -0 "$KEYD_PID" 2>/dev/null || die "keyd exited at start-up"
  sleep 0.1
done
export KEYD_SOCKET=$T/run/keyd.sock
printf 'socket = %s\ntoken_label = keyd\n' "$KEYD_SOCKET" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf

# The OpenSSL configs of the four paths.
base() {
  printf 'openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n'
  printf '[provider_sect]\ndefault = default_sect\n%s = extra_sect\n' "$1"
  printf '[default_sect]\nactivate = 1\n[extra_sect]\nactivate = 1\nmodule = %s\n' "$2"
  printf '[req]\ndistinguished_name = dn\n[dn]\n'
}
base keyd "$PROVDIR/keyd.so" > "$T/a.cnf"
{ base pkcs11 "$P11PROV"; printf '[extra_sect]\npkcs11-module-path = %s\n' "$KEYD_PKCS11"; } > "$T/b.cnf"
{ base pkcs11 "$P11PROV"; printf '[extra_sect]\npkcs11-module-path = %s\npkcs11-module-token-pin = %s\n' \
  "$SOFTHSM_MODULE" "$PIN"; } > "$T/c.cnf"
# The [extra_sect] lines above are appended to the section, which OpenSSL
# reads as one (a repeated section header continues it).
printf 'openssl_conf = openssl_init\n[openssl_init]\n' > "$T/d.cnf"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/pem.key" 2>/dev/null

KEY_A=keyd:ec
KEY_B="pkcs11:token=keyd;object=ec;type=private"
KEY_C="pkcs11:token=$TOKEN;object=ec;type=private"
KEY_D=$T/pem.key
PATHS="A D"
[[ -f $P11PROV ]] && PATHS="A B C D"
# A path whose key does not load (pkcs11-provider straight over SoftHSM2
# crashed in openssl req on Debian 13) is left out, and said so.
LEFT_OUT=
for p in $PATHS; do
  k=KEY_$p
  rc=0
  OPENSSL_CONF=$T/${p,,}.cnf openssl req -new -x509 -key "${!k}" -subj /CN=localhost \
    -days 2 -out "$T/$p.pem" >"$T/req-$p.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    LEFT_OUT+="path $p: openssl req with its key failed (status $rc$( ((rc > 128)) && echo ", signal $((rc - 128))")), left out. "
    PATHS=$(sed "s/\b$p\b//; s/  */ /g" <<< "$PATHS")
  fi
done

echo "## keyd's OpenSSL provider"
echo
echo "Machine: $(nproc) vCPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1);" \
  "$(. /etc/os-release && echo "$PRETTY_NAME"), $(openssl version | cut -d' ' -f1-2)." \
  "Load before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "### Signatures per second (ECDSA P-256, 1 KiB message; median of $ROUNDS alternating rounds of $DURATION s)"
echo
echo "| threads | libkeyd keyd_sign (SHA-256 here) | keyd.so EVP_DigestSign | ratio |"
echo "|---|---|---|---|"
for th in 1 2; do
  read -r n a b ratio < <(OPENSSL_CONF=/dev/null OPENSSL_MODULES=$PROVDIR \
    "$BENCH" ec "$DURATION" "$th" "$ROUNDS")
  echo "| $n | $a | $b | $ratio |"
done
echo

# handshakes PATH: s_server with the path's key, s_time -new for
# $DURATION s; prints "HANDSHAKES_PER_S SERVER_CPU_US_PER_HANDSHAKE".
handshakes() {
  local p=$1 k=KEY_$1 port c0 c1 n secs
  : > "$T/srv.log"
  OPENSSL_CONF=$T/${p,,}.cnf openssl s_server -key "${!k}" -cert "$T/$p.pem" \
    -accept 127.0.0.1:0 -tls1_3 -www </dev/null >"$T/srv.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 200); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/srv.log")
    [[ -n $port ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || die "path $p: s_server did not start: $(cat "$T/srv.log")"
  c0=$(awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat")
  OPENSSL_CONF=/dev/null openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" \
    > "$T/stime.out" 2>&1 || die "path $p: s_time failed: $(tail -n 3 "$T/stime.out")"
  c1=$(awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat")
  kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
  SRV_PID=
  # "N connections in S real seconds" (the line before counts CPU time).
  read -r n secs < <(sed -n 's/^\([0-9][0-9]*\) connections in \([0-9.][0-9.]*\) real seconds.*/\1 \2/p' "$T/stime.out" | head -n1)
  [[ -n ${n:-} && $n -gt 0 ]] || die "path $p: s_time made no connection: $(cat "$T/stime.out")"
  awk -v n="$n" -v s="$secs" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f %.0f\n", n / s, c / hz * 1e6 / n }'
}

declare -A HS CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for p in $PATHS; do
    read -r h c < <(handshakes "$p")
    HS[$p]+="$h "
    CPU[$p]+="$c "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "### Full TLS 1.3 handshakes (openssl s_time -new, ECDSA P-256; median of $ROUNDS rounds of $DURATION s, paths alternating)"
echo
echo "| path | handshakes/s | server CPU per handshake (us) | each round (handshakes/s) |"
echo "|---|---|---|---|"
declare -A NAME=([A]="keyd's provider (keyd.so)" [B]="pkcs11-provider over keyd-pkcs11.so"
  [C]="pkcs11-provider over SoftHSM2, in-process" [D]="PEM key")
for p in $PATHS; do
  echo "| $p: ${NAME[$p]} | $(median <<< "${HS[$p]}") | $(median <<< "${CPU[$p]}") | ${HS[$p]% } |"
done
echo
[[ -z $LEFT_OUT ]] || { echo "$LEFT_OUT"; echo; }
echo "keyd's signatures in its audit log: $(grep -c '"op":"sign"' "$T/audit.jsonl")."
