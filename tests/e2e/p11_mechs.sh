#!/usr/bin/env bash
# keyd-pkcs11.so through its PKCS#11 interface (p11drive): every
# mechanism, single- and multi-part, with its parameter checks and exact
# error codes; signatures judged by OpenSSL against the public keys read
# from the token directly; C_Verify; OAEP; objects, attributes and the
# certificate; login; the read-only token; C_GetInterface.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
p11_ca
openssl x509 -new -force_pubkey "$T/ec.pem" -subj /CN=sip.example.com \
  -CA "$T/ca.pem" -CAkey "$T/ca.key" -days 2 -out "$T/sip-tls.pem" \
  >/dev/null 2>&1 || fail "cannot make sip-tls's certificate"
p11_import_cert "$T/sip-tls.pem" 01 sip-tls
start_keyd

"$P11DRIVE" "$MODULE" mechs "$T/ec.pem" "$T/rsa.pem" "$T/ed.pem" \
  "$T/sip-tls.der" || fail "p11drive mechs"
pass "p11drive mechs: mechanisms, parameters, objects, login"

# keyd refused nothing it was asked: the module's own checks came first
# (the refusals above never reached keyd), except the one key granted
# sign only, which the module refuses itself too.
if grep '"op":"sign"' "$T/audit.jsonl" | grep -v '"result":"ok"' | has .; then
  grep '"op":"sign"' "$T/audit.jsonl" | grep -v '"result":"ok"' >&2
  fail "keyd saw signature requests the module should have refused"
fi
pass "every refusal came from the module, before keyd"

# A config file that is wrong stops C_Initialize, saying why.
printf 'sockett = /x\n' > "$T/bad.conf"
KEYD_PKCS11_CONF=$T/bad.conf "$P11DRIVE" "$MODULE" threads sip-tls "$T/ec.pem" 1 1 \
  >"$T/out" 2>&1 && fail "an unknown setting was accepted"
grep -q "unknown setting 'sockett'" "$T/out" || { cat "$T/out"; fail "no reason given"; }
chmod 0666 "$T/pkcs11.conf"
"$P11DRIVE" "$MODULE" threads sip-tls "$T/ec.pem" 1 1 >"$T/out" 2>&1 &&
  fail "a world-writable config was accepted"
grep -q "not writable by group or others" "$T/out" || { cat "$T/out"; fail "no reason given"; }
pass "a bad or world-writable config file stops C_Initialize with a reason"
