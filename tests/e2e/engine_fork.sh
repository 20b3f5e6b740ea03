#!/usr/bin/env bash
# A pre-forking server (as Kamailio) on OpenSSL with libp11's engine and
# keyd-pkcs11.so: the parent loads the key and signs; four children sign
# with the inherited key, one of them after loading the key itself; the
# parent signs again. keyd's audit log shows the signatures of all five
# processes. Once with an ECDSA key, once with an RSA key.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd
p11_engine_conf

for key in sip-tls sip-rsa; do
  pem=$T/ec.pem
  [[ $key == sip-rsa ]] && pem=$T/rsa.pem
  before=$(grep -c "\"op\":\"sign\",\"key\":\"$key\"" "$T/audit.jsonl" || true)
  with_engine 60 "$KEYD_BUILD_DIR/tests/engine_fork" \
    "pkcs11:token=$P11LABEL;object=$key;type=private" "$pem" 4 >"$T/out" 2>&1 ||
    { cat "$T/out"; fail "engine_fork with $key"; }
  grep -q "^children=4 failed=0$" "$T/out" || { cat "$T/out"; fail "engine_fork with $key"; }
  pids=$(grep "\"op\":\"sign\",\"key\":\"$key\"" "$T/audit.jsonl" | tail -n +$((before + 1)) |
    grep '"result":"ok"' | sed 's/.*"pid":\([0-9]*\).*/\1/' | sort -u | wc -l)
  [[ $pids -eq 5 ]] || fail "keyd saw $key signatures from $pids processes, not 5"
  pass "$key: parent and 4 children signed through the engine; keyd saw 5 processes"
done
