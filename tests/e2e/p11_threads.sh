#!/usr/bin/env bash
# Eight threads of one process sign at once through one loaded module,
# each with its own session: no errors, every signature verified by
# OpenSSL, all of them in keyd's audit log.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd

N=8 ITERS=100
"$P11DRIVE" "$MODULE" threads sip-tls "$T/ec.pem" $N $ITERS >"$T/out" ||
  { cat "$T/out"; fail "p11drive threads"; }
grep -q "^threads=$N signatures=$((N * ITERS)) errors=0 " "$T/out" ||
  { cat "$T/out"; fail "errors"; }
pass "$(cat "$T/out")"

n=$(grep -c '"op":"sign","key":"sip-tls","mech":"ecdsa","result":"ok"' "$T/audit.jsonl")
[[ $n -eq $((N * ITERS)) ]] || fail "keyd audited $n signatures, not $((N * ITERS))"
pass "keyd audited all $n signatures"
