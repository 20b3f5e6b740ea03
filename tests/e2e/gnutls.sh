#!/usr/bin/env bash
# GnuTLS's p11tool against keyd-pkcs11.so: --list-all before and after
# login, and --test-sign, which signs through the module and verifies
# with GnuTLS against the key's parameters and the token's public key.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd
URL="pkcs11:token=$P11LABEL"
P11T=(ext p11tool --provider "$MODULE")

"${P11T[@]}" --list-all "$URL" >"$T/all" 2>&1 || { cat "$T/all"; fail "--list-all"; }
[[ $(grep -c "Type: Public key" "$T/all") -eq 4 ]] || { cat "$T/all"; fail "not 4 public keys"; }
grep -q "Type: Private key" "$T/all" && fail "private keys listed before login"
grep -q "object=sip-tls;type=public" "$T/all" || fail "no sip-tls public key URL"
pass "p11tool --list-all: the public keys"

# The token has a protected authentication path: no PIN is asked for;
# GNUTLS_PIN, if set, is accepted too.
"${P11T[@]}" --login --list-all "$URL" </dev/null >"$T/all" 2>&1 || { cat "$T/all"; fail "--login --list-all"; }
[[ $(grep -c "Type: Private key" "$T/all") -eq 4 ]] || { cat "$T/all"; fail "not 4 private keys"; }
grep -q "Type: Private key (EC/ECDSA-SECP256R1)" "$T/all" || fail "sip-tls's type"
grep -q "Type: Private key (RSA-2048)" "$T/all" || fail "sip-rsa's type"
grep -q "Type: Private key (EdDSA (Ed25519))" "$T/all" || fail "sip-ed's type"
grep -A4 "object=sip-tls;type=private" "$T/all" | has "CKA_SENSITIVE" || fail "sip-tls not sensitive"
pass "p11tool --login --list-all: the private keys, without a PIN"

test_sign() {
  GNUTLS_PIN=any "${P11T[@]}" --login --test-sign "$@" >"$T/ts" 2>&1 ||
    { cat "$T/ts"; fail "--test-sign $*"; }
  grep -q "Verifying against public key in the token... ok" "$T/ts" ||
    { cat "$T/ts"; fail "--test-sign $*: not verified"; }
  pass "p11tool --test-sign $* ($(grep -o 'Signing using [^.]*' "$T/ts"))"
}
test_sign "$URL;object=sip-tls;type=private"
test_sign "$URL;object=sip-rsa;type=private"
test_sign --sign-params RSA-PSS "$URL;object=sip-rsa;type=private"
test_sign --hash SHA512 "$URL;object=sip-ed;type=private"

for m in ecdsa rsa-pkcs1-digestinfo rsa-pss-sha256 ed25519; do
  grep -q "\"op\":\"sign\",\"key\":\"[a-z-]*\",\"mech\":\"$m\",\"result\":\"ok\"" "$T/audit.jsonl" ||
    fail "keyd audited no $m signature"
done
pass "keyd audited each signature"
