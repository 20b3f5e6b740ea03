#!/usr/bin/env bash
# run-bench.sh: runs keyd-bench on a fresh SoftHSM2 token in a temporary
# directory, with keyd (audit log on, audit_sync in its default interval
# mode) and p11-kit server on that token, then measures keyd's RSS with
# 256 idle connections. Prints the machine, the load, keyd-bench's tables
# and the RSS figures, in markdown, for docs/benchmarks.md.
#
# usage: tests/bench/run-bench.sh [BUILD_DIR]   (default: build)
#   BENCH_DURATION   seconds per cell (default 3)
#   BENCH_THREADS    client thread counts (default 1,2)
#   BENCH_OPS        ecdsa,rsa-pkcs1,rsa-pss,srtp-open,passport (default: all)
#   BENCH_PATHS      abcde (default: all; e is (a) with session-object
#                    copies of the keys, outside the ratios)
#   SOFTHSM_MODULE   default /usr/lib/softhsm/libsofthsm2.so
#   P11KIT_CLIENT    default /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
KEYD=$BUILD/keyd/keyd
BENCH=$BUILD/tests/keyd-bench
KD_RAW=$BUILD/tests/kd_raw
KEYD_PKCS11=$BUILD/client/pkcs11/keyd-pkcs11.so
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
P11KIT_CLIENT=${P11KIT_CLIENT:-/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so}
DURATION=${BENCH_DURATION:-3}
THREADS=${BENCH_THREADS:-1,2}
OPS=${BENCH_OPS:-ecdsa,rsa-pkcs1,rsa-pss,srtp-open,passport}
PATHS=${BENCH_PATHS:-abcde}
TOKEN=bench
PIN=1234
IDLE_CONNS=256

for f in "$KEYD" "$BENCH" "$KD_RAW" "$KEYD_PKCS11" "$SOFTHSM_MODULE" "$P11KIT_CLIENT"; do
  [[ -e $f ]] || { echo "run-bench: $f is missing (build first)" >&2; exit 1; }
done

T=$(mktemp -d /tmp/keyd-bench.XXXXXX)
chmod 755 "$T"
KEYD_PID= P11KIT_PID= HOLD_PID=
cleanup() {
  local p
  for p in $HOLD_PID $P11KIT_PID $KEYD_PID; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT
die() { echo "run-bench: $*" >&2; [[ -f $T/keyd.log ]] && tail -n 20 "$T/keyd.log" >&2; exit 1; }

export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens" "$T/run" "$T/state"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label $TOKEN --pin $PIN --so-pin 5678 >/dev/null
p11() { pkcs11-tool --module "$SOFTHSM_MODULE" --token-label $TOKEN --login --pin $PIN "$@"; }
p11 --keypairgen --key-type EC:prime256v1 --label ec --id 01 --sensitive --usage-sign >/dev/null
p11 --keypairgen --key-type rsa:2048 --label rsa --id 02 --sensitive --usage-sign >/dev/null
p11 --keygen --key-type AES:32 --label kek --id 10 --sensitive >/dev/null
# The SHAKEN key (passport) and its certificate: the CSR made on the token
# with libp11's engine, signed by a throw-away CA with a TNAuthList (an SPC).
p11 --keypairgen --key-type EC:prime256v1 --label shaken --id 03 --sensitive --usage-sign >/dev/null
PKCS11_MODULE_PATH=$SOFTHSM_MODULE openssl req -new -engine pkcs11 -keyform engine \
  -key "pkcs11:token=$TOKEN;object=shaken;type=private;pin-value=$PIN" \
  -subj "/CN=SHAKEN bench" -out "$T/shaken.csr" >/dev/null 2>&1 || die "the SHAKEN CSR"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ca.key"
openssl req -new -x509 -key "$T/ca.key" -subj "/CN=bench STI-CA" -days 2 -out "$T/ca.pem"
# TNAuthList ::= SEQUENCE { [0] EXPLICIT IA5String "709J" } (RFC 8226)
echo '1.3.6.1.5.5.7.1.26 = DER:3008a00616043730394a' > "$T/tnauth.ext"
openssl x509 -req -in "$T/shaken.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -days 2 \
  -extfile "$T/tnauth.ext" -out "$T/shaken.pem" 2>/dev/null || die "the SHAKEN certificate"
for k in 01:ec 02:rsa; do
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label $TOKEN --read-object \
    --type pubkey --id "${k%%:*}" -o "$T/${k#*:}.der" >/dev/null 2>&1
  openssl pkey -pubin -inform DER -in "$T/${k#*:}.der" -out "$T/${k#*:}.pem"
done
printf '%s\n' $PIN > "$T/pin"
chmod 0400 "$T/pin"

# keyd: defaults everywhere that matters (audit_sync = interval, workers =
# one per CPU); the audit log is on.
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

[key rsa]
uri = pkcs11:object=rsa;type=private
ops = sign

[key kek]
uri = pkcs11:object=kek;type=secret-key
ops = srtp-new, srtp-open

[key shaken]
uri = pkcs11:object=shaken;type=private
ops = passport
x5u = https://cert.example.org/shaken.pem
certificate = $T/shaken.pem

[client bench]
uid = $(id -u)
keys = ec, rsa, kek, shaken
ops = sign, srtp-new, srtp-open, passport
attest_max = A
orig_tns = 1202555*
CONF
chmod 0600 "$T/keyd.conf"
# libkeyd and keyd-pkcs11.so accept a daemon run by root or this user.
[[ $(id -u) -eq 0 ]] || export KEYD_DAEMON_USER=$(id -un)
"$KEYD" -c "$T/keyd.conf" > "$T/keyd.log" 2>&1 &
KEYD_PID=$!
for _ in $(seq 100); do
  grep -q serving "$T/keyd.log" && break
  kill -0 "$KEYD_PID" 2>/dev/null || die "keyd exited at start-up"
  sleep 0.1
done
grep -q serving "$T/keyd.log" || die "keyd did not start"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$KEYD_PID/status"; }

# keyd's RSS, fresh and with 256 idle connections that said hello.
idle_rss() {
  "$KD_RAW" "$T/run/keyd.sock" hold $IDLE_CONNS > "$T/hold.out" 2>&1 &
  HOLD_PID=$!
  for _ in $(seq 100); do grep -q "held $IDLE_CONNS" "$T/hold.out" && break; sleep 0.1; done
  grep -q "held $IDLE_CONNS" "$T/hold.out" || die "could not hold $IDLE_CONNS connections"
  sleep 0.5
  rss
  kill "$HOLD_PID"; wait "$HOLD_PID" 2>/dev/null || true
  HOLD_PID=
}
RSS_FRESH=$(rss)
RSS_IDLE_FRESH=$(idle_rss)

# p11-kit server forwarding the same token (path d).
p11-kit server -f --provider "$SOFTHSM_MODULE" -n "$T/p11kit.sock" \
  "pkcs11:token=$TOKEN" > "$T/p11kit.log" 2>&1 &
P11KIT_PID=$!
for _ in $(seq 100); do [[ -S $T/p11kit.sock ]] && break; sleep 0.1; done
[[ -S $T/p11kit.sock ]] || die "p11-kit server did not start: $(cat "$T/p11kit.log")"
export P11_KIT_SERVER_ADDRESS=unix:path=$T/p11kit.sock

# keyd-pkcs11.so's own config (path c).
printf 'socket = %s\ntoken_label = keyd\n' "$T/run/keyd.sock" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CMD=("$BENCH" --module "$SOFTHSM_MODULE" --token $TOKEN --pin-file "$T/pin"
  --keyd "$T/run/keyd.sock" --keyd-pkcs11 "$KEYD_PKCS11"
  --p11kit-client "$P11KIT_CLIENT" --ec-pem "$T/ec.pem" --rsa-pem "$T/rsa.pem"
  --duration "$DURATION" --threads "$THREADS" --ops "$OPS" --paths "$PATHS"
  --keyd-pid "$KEYD_PID" --p11kit-pid "$P11KIT_PID")
"${CMD[@]}" > "$T/bench.out"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RSS_AFTER=$(rss)
RSS_IDLE_AFTER=$(idle_rss)
AUDIT_LINES=$(wc -l < "$T/audit.jsonl")

ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo '?'; }
cat <<EOF
## Run of $(date -u '+%Y-%m-%d %H:%M UTC')

- command: \`BENCH_DURATION=$DURATION BENCH_THREADS=$THREADS tests/bench/run-bench.sh ${1:-build}\`
- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1); kernel $(uname -r)
- packages: softhsm2 $(ver softhsm2), p11-kit $(ver p11-kit), libssl3 $(ver libssl3)
- load average (1, 5, 15 min): $LOAD_BEFORE before, $LOAD_AFTER after
- keyd: audit log on (audit_sync = interval, default), workers = default ($(nproc)); $AUDIT_LINES audit lines written

$(cat "$T/bench.out")

| keyd RSS | kB |
|---|---:|
| fresh, no connection | $RSS_FRESH |
| fresh, $IDLE_CONNS idle connections (each said hello) | $RSS_IDLE_FRESH |
| after the benchmark, no connection | $RSS_AFTER |
| after the benchmark, $IDLE_CONNS idle connections | $RSS_IDLE_AFTER |
EOF
