#!/usr/bin/env bash
# A long-lived process keeps its session and object handles across a keyd
# restart: it signs, keyd stops (its next call fails at once with
# CKR_DEVICE_ERROR, not a hang), keyd starts again, and the same process
# signs again with the same session handle.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd

coproc DRV { "$P11DRIVE" "$MODULE" serve sip-tls "$T/ec.pem" 2>"$T/drv.err"; }
# bash unsets DRV_PID once the coprocess has ended: keep it.
DPID=$DRV_PID
read -t 30 -r line <&"${DRV[0]}" || { cat "$T/drv.err" >&2; fail "p11drive did not start"; }
[[ $line =~ ^ready\ session=([0-9]+)\ key=([0-9]+)$ ]] || fail "p11drive said: $line"
S=${BASH_REMATCH[1]} K=${BASH_REMATCH[2]}

# cmd LINE: sends a command and reads the answer into REPLY.
cmd() {
  echo "$1" >&"${DRV[1]}"
  read -t 60 -r REPLY <&"${DRV[0]}" || { cat "$T/drv.err" >&2; fail "p11drive did not answer '$1'"; }
}
expect_sign() { # RV
  cmd sign
  [[ $REPLY =~ ^rv=$1\ session=$S\ key=$K\ ms=([0-9]+)$ ]] ||
    { cat "$T/drv.err" >&2; fail "sign: '$REPLY', want rv=$1 on session $S key $K"; }
  MS=${BASH_REMATCH[1]}
}

expect_sign 0x0
pass "signed on session $S with key handle $K"

stop_keyd
expect_sign 0x30
(( MS < 2000 )) || fail "a call with keyd down took $MS ms"
pass "keyd down: CKR_DEVICE_ERROR after $MS ms"

start_keyd
expect_sign 0x0
cmd find
[[ $REPLY == "key=$K" ]] || fail "the key's handle changed: $REPLY"
pass "keyd back: the same session and key handle sign again"

# A restart between two calls, with the connection still open: libkeyd
# reconnects and retries on its own, and the call succeeds.
stop_keyd
start_keyd
expect_sign 0x0
pass "a restart between calls is invisible to the application"

echo quit >&"${DRV[1]}"
wait "$DPID" || fail "p11drive exited with an error"
grep -q '"op":"sign","key":"sip-tls","mech":"ecdsa","result":"ok"' "$T/audit.jsonl" ||
  fail "the last keyd audited no signature"
