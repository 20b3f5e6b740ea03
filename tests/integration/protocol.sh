#!/usr/bin/env bash
# protocol.sh: bad input on the wire, each a case of kd_raw (a raw client
# that sends what libkeyd never would): truncated frames, oversized
# lengths, garbage, unknown operations, algorithms that do not fit the
# key, digests of the wrong length, clients that vanish mid-request or
# dribble a frame one byte at a time or go silent. After all of it the
# daemon still serves and its memory did not balloon. Then load:
# pipelined requests on one connection, many connections at once, and 50
# keydctl processes signing in parallel, every signature verified.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=prototest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
write_pin
write_config <<CONF
idle_timeout = 2
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = sign
[client me]
uid = $(id -u)
keys = p256, rsa
ops = sign, status
CONF
start_keyd
S=$T/run/keyd.sock
export_pub 01 "$T/p256.pem"

# raw SCENARIO ARGS... [want the output to contain TEXT via RAW_WANT]
raw() {
  local out
  out=$("$KD_RAW" "$S" "$@" 2>&1) || fail "kd_raw $*: $out"
  [[ -z ${RAW_SHOW:-} ]] || echo "kd_raw $*: $out"
  if [[ -n ${RAW_WANT:-} && $out != *"$RAW_WANT"* ]]; then
    fail "kd_raw $*: said '$out', want '$RAW_WANT'"
  fi
  kill -0 "$KEYD_PID" 2>/dev/null || fail "keyd died after kd_raw $*"
}
hex() { head -c "$1" /dev/zero | tr '\0' "${2:-a}" | od -An -v -tx1 | tr -d ' \n'; }
D32=$(hex 32) D19=$(hex 19) D20=$(hex 20) D31=$(hex 31) D48=$(hex 48)
D64=$(hex 64) D65=$(hex 65)

abuse() { # one round of every bad input
  raw truncated
  RAW_WANT="error -5: frame larger than the daemon's max_frame of 65536 bytes" raw oversized
  RAW_WANT="error -5:" raw oversized 65537
  RAW_WANT="error -5:" raw oversized 0xffffffff
  RAW_WANT="error -4: the frame is not a keyd Request message" raw garbage
  # A frame of exactly max_frame bytes is read whole, then refused.
  RAW_WANT="error -4:" raw garbage 65536
  RAW_WANT="error -8:" raw unknown-op
  RAW_WANT="error -8:" raw empty
  RAW_WANT="error -20: client speaks protocol version 2; this keyd speaks 1" raw version
  raw split
  raw disconnect p256
  # Algorithms that do not fit the key (SignAlg numbers of keyd.proto).
  RAW_WANT="error -9: rsa-pkcs1-sha256 does not fit key 'p256' (ec-p256)" raw sign p256 2 "$D32" -9
  RAW_WANT="error -9: rsa-pss-sha256 does not fit key 'p256' (ec-p256)" raw sign p256 6 "$D32" -9
  RAW_WANT="error -9: ed25519 does not fit key 'p256' (ec-p256)" raw sign p256 9 "$D32" -9
  RAW_WANT="error -9: ecdsa does not fit key 'rsa' (rsa)" raw sign rsa 1 "$D32" -9
  RAW_WANT="error -9: unknown signature algorithm 0" raw sign p256 0 "$D32" -9
  RAW_WANT="error -9: unknown signature algorithm 99" raw sign p256 99 "$D32" -9
  # Digests: empty, too short, too long, wrong for the hash.
  RAW_WANT="error -10: an ECDSA digest is 20 to 64 bytes, not 0" raw sign p256 1 "" -10
  RAW_WANT="error -10: an ECDSA digest is 20 to 64 bytes, not 19" raw sign p256 1 "$D19" -10
  RAW_WANT="error -10: an ECDSA digest is 20 to 64 bytes, not 65" raw sign p256 1 "$D65" -10
  RAW_WANT="error -10: rsa-pkcs1-sha256 takes a 32-byte digest, not 31 bytes" raw sign rsa 2 "$D31" -10
  RAW_WANT="error -10: rsa-pkcs1-sha256 takes a 32-byte digest, not 0 bytes" raw sign rsa 2 "" -10
  RAW_WANT="error -10: rsa-pss-sha256 takes a 32-byte digest, not 48 bytes" raw sign rsa 6 "$D48" -10
  RAW_WANT="error -10: rsa-pss-sha512 takes a 64-byte digest, not 32 bytes" raw sign rsa 8 "$D32" -10
  RAW_WANT="error -10: the input is not a DER DigestInfo" raw sign rsa 5 "$D64" -10
  # Keys: unknown, unnamed.
  RAW_WANT="error -7: no key named 'nope'" raw sign nope 1 "$D32" -7
  RAW_WANT="error -3: no key named in the request" raw sign "" 1 "$D32" -3
  # ...and the boundaries that are fine.
  RAW_WANT="error 0:" raw sign p256 1 "$D20" 0
  RAW_WANT="error 0:" raw sign p256 1 "$D64" 0
  RAW_WANT="error 0:" raw sign rsa 2 "$D32" 0
}

abuse
pass "bad input, round 1"
# Memory: after a warm-up round, 5 more rounds and a flood must not grow
# keyd's resident set by more than 4 MiB (a leak per request or per
# connection would, at several hundred of each).
rss0=$(keyd_rss_kb)
for _ in 1 2 3 4 5; do abuse; done
RAW_SHOW=1 RAW_WANT="requests sent, none read" raw flood 20000 p256
rss1=$(keyd_rss_kb)
echo "keyd RSS: $rss0 kB after round 1, $rss1 kB after 5 more and a flood"
# (AddressSanitizer holds freed memory in quarantine: no RSS verdict.)
if [[ ${KEYD_SANITIZE:-OFF} == ON ]]; then
  echo "note: sanitizer build, RSS not judged"
else
  (( rss1 - rss0 < 4096 )) || fail "keyd's RSS grew from $rss0 to $rss1 kB"
fi
pass "bad input, 5 more rounds, RSS $rss0 -> $rss1 kB"

# The oversized and garbage frames are in the audit log.
grep -q '"event":"protocol-error".*"error":-5,"detail":"frame larger than the daemon'"'"'s max_frame of 65536 bytes"' \
  "$T/audit.jsonl" || fail "no protocol-error line for an oversized frame"
grep -q '"op":"invalid","result":"protocol error","error":-4' "$T/audit.jsonl" ||
  fail "no audit line for a garbage frame"

# A silent client is closed by idle_timeout (2 s: after 2 to 4 s, since
# the daemon counts whole seconds), without a byte.
RAW_SHOW=1 RAW_WANT="closed after" raw idle 6
pass "idle connection closed"

# Pipelining: 500 requests written before any reply is read (over
# max_inflight, so the daemon must hold back and resume), each answered
# once.
RAW_WANT="500 pipelined replies" raw pipeline 500 p256
pass "pipeline 500"

# Many connections at once: 200 held open (each said hello) while
# another client signs, then released.
"$KD_RAW" "$S" hold 200 > "$T/hold.out" 2>&1 &
hold_pid=$!
wait_for "$T/hold.out" "held 200" 20
# (200 held and status's own; earlier clients' closes may still be on
# their way, hence the wait)
for _ in $(seq 50); do
  "$KEYDCTL" status > "$T/status"
  grep -q " 201 connections," "$T/status" && break
  sleep 0.1
done
grep -q " 201 connections," "$T/status" || fail "status during hold: $(head -1 "$T/status")"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/hold.out" -o "$T/sig"
verify_sig ecdsa-sha256 "$T/p256.pem" "$T/hold.out" "$T/sig" >/dev/null ||
  fail "signature during hold"
kill "$hold_pid"; wait "$hold_pid" 2>/dev/null || true
for _ in $(seq 50); do
  "$KEYDCTL" status > "$T/status"
  grep -q " 1 connection," "$T/status" && break
  sleep 0.1
done
grep -q " 1 connection," "$T/status" || fail "connections not released: $(head -1 "$T/status")"
pass "200 connections at once"

# 50 keydctl processes signing in parallel; every one succeeds and its
# signature verifies over its own message.
pids=()
for i in $(seq 50); do
  printf 'message %d\n' "$i" > "$T/par.$i"
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/par.$i" -o "$T/par.$i.sig" \
    2> "$T/par.$i.err" &
  pids+=($!)
done
for i in $(seq 50); do
  wait "${pids[$((i - 1))]}" || fail "parallel sign $i: $(cat "$T/par.$i.err")"
done
for i in $(seq 50); do
  verify_sig ecdsa-sha256 "$T/p256.pem" "$T/par.$i" "$T/par.$i.sig" >/dev/null ||
    fail "parallel signature $i does not verify"
done
# ...and a signature does not verify over another's message.
! verify_sig ecdsa-sha256 "$T/p256.pem" "$T/par.1" "$T/par.2.sig" >/dev/null 2>&1 ||
  fail "signature 2 verifies message 1"
pass "50 parallel keydctl"

raw hello
kill -0 "$KEYD_PID" || fail "keyd is gone"
stop_keyd
pass "protocol"
