#!/usr/bin/env bash
# Per-client limits: the rate limit (token bucket from [client] rate) and
# the connection limit ([client] max_connections), each refused with a
# clear error and audited.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=lim
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
write_pin
write_config <<CONF
[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client root]
uid = 0
keys = ec
ops = sign
rate = 20/s
max_connections = 3
CONF
start_keyd
DG=$(printf '%064d' 7)

# Rate: a burst of one second's worth passes, then requests are refused
# with KEYD_ERR_RATE_LIMITED (-14) until the bucket refills.
t0=$(date +%s%N)
"$KD_RAW" "$KEYD_SOCKET" burst ec 60 > "$T/burst.out" || fail "burst scenario failed"
t1=$(date +%s%N)
ok=$(grep -c '^0$' "$T/burst.out" || true)
limited=$(grep -c '^-14$' "$T/burst.out" || true)
# One second's worth (20) at once, plus what refilled while the burst ran.
max=$(( 20 + 20 * (t1 - t0) / 1000000000 + 2 ))
[[ $ok -ge 19 && $ok -le $max && $limited -ge 1 ]] ||
  fail "burst of 60 at rate 20/s over $(( (t1 - t0) / 1000000 )) ms: $ok served (want 19 to $max)"
[[ $limited -eq $((60 - ok)) ]] || fail "burst: $limited refused as rate-limited, want $((60 - ok))"
sleep 1.2
"$KD_RAW" "$KEYD_SOCKET" sign ec 1 "$DG" 0 >/dev/null || fail "not served again after the bucket refilled"
grep -q '"result":"rate limit exceeded"' "$T/audit.jsonl" || fail "rate-limited requests not audited"
pass "rate 20/s: $ok of a 60-request burst served, $limited refused, served again after 1 s"

# Connections: the client's fourth concurrent connection is closed.
"$KD_RAW" "$KEYD_SOCKET" hold 3 > "$T/hold.out" 2>&1 &
holder=$!
for _ in $(seq 1 50); do grep -q held "$T/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q held "$T/hold.out" || fail "could not hold 3 connections"
"$KD_RAW" "$KEYD_SOCKET" denied || fail "a 4th connection was served"
kill "$holder"; wait "$holder" 2>/dev/null || true
sleep 0.3
"$KD_RAW" "$KEYD_SOCKET" hello || fail "not served again after connections closed"
stop_keyd
grep -q "the client's max_connections reached" "$T/audit.jsonl" || fail "connection refusal not audited"
pass "max_connections 3: the 4th is closed and audited"
