#!/usr/bin/env bash
# OpenSC's pkcs11-tool against keyd-pkcs11.so: the slot, the token, the
# objects (keys and a certificate keyd serves), signatures with ECDSA,
# RSA and EdDSA that OpenSSL verifies with the public keys read from the
# token directly, OAEP decryption, and Ed25519 hidden on request.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
p11_ca
# A certificate for sip-tls, made by the CA over the token's public key.
openssl x509 -new -force_pubkey "$T/ec.pem" -subj /CN=sip.example.com \
  -CA "$T/ca.pem" -CAkey "$T/ca.key" -days 2 -out "$T/sip-tls.pem" \
  >/dev/null 2>&1 || fail "cannot make sip-tls's certificate"
p11_import_cert "$T/sip-tls.pem" 01 sip-tls
start_keyd

PT=(ext pkcs11-tool --module "$MODULE")

"${PT[@]}" --list-slots >"$T/slots" 2>&1 || { cat "$T/slots"; fail "--list-slots"; }
grep -q "token label *: $P11LABEL\$" "$T/slots" || { cat "$T/slots"; fail "no token labelled $P11LABEL"; }
grep -q "PIN pad present" "$T/slots" || fail "the token does not say it needs no PIN"
pass "pkcs11-tool --list-slots shows token '$P11LABEL'"

# Before login: public keys and the certificate, no private keys.
"${PT[@]}" --list-objects >"$T/objs" 2>&1 || { cat "$T/objs"; fail "--list-objects"; }
grep -q "^Private Key Object" "$T/objs" && fail "private keys visible before login"
[[ $(grep -c "^Public Key Object" "$T/objs") -eq 4 ]] || { cat "$T/objs"; fail "not 4 public keys"; }
grep -q "^Certificate Object; type = X.509 cert" "$T/objs" || { cat "$T/objs"; fail "no certificate object"; }
grep -q "subject: *DN: CN=sip.example.com" "$T/objs" || { cat "$T/objs"; fail "certificate subject"; }
pass "before login: public keys and the certificate"

# After login (any PIN): private keys with their ids, sensitive, and the
# AES KEK nowhere.
"${PT[@]}" --login --pin whatever --list-objects >"$T/objs" 2>&1 || { cat "$T/objs"; fail "--login --list-objects"; }
[[ $(grep -c "^Private Key Object" "$T/objs") -eq 4 ]] || { cat "$T/objs"; fail "not 4 private keys"; }
grep -A3 "^Private Key Object; EC\$" "$T/objs" | has "ID: *01" || fail "sip-tls's id"
grep -A4 "^Private Key Object; RSA" "$T/objs" | has "Usage: *decrypt, sign" || fail "sip-rsa's usage"
grep -q "Access: *sensitive" "$T/objs" || fail "private keys not sensitive"
grep -qi "secret key\|srtp-kek" "$T/objs" && fail "the AES KEK is shown"
pass "after login: private keys with CKA_ID, usage and sensitivity"

# ECDSA: selected by --id (pkcs11-tool ignores --label when signing);
# OpenSSL verifies with the public key pkcs11-tool read from SoftHSM2.
printf 'SIP/2.0 200 OK\r\n' > "$T/msg"
"${PT[@]}" --login --sign --id 01 -m ECDSA-SHA256 --signature-format openssl \
  -i "$T/msg" -o "$T/sig" >/dev/null 2>&1 || fail "ECDSA-SHA256 sign"
openssl dgst -sha256 -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
  fail "OpenSSL rejects the ECDSA-SHA256 signature"
pass "ECDSA-SHA256 by --id 01, verified by OpenSSL"
openssl dgst -sha384 -binary "$T/msg" > "$T/dig"
"${PT[@]}" --login --sign --id 01 -m ECDSA --signature-format openssl \
  -i "$T/dig" -o "$T/sig" >/dev/null 2>&1 || fail "raw ECDSA sign"
openssl pkeyutl -verify -pubin -inkey "$T/ec.pem" -in "$T/dig" -sigfile "$T/sig" >/dev/null ||
  fail "OpenSSL rejects the raw ECDSA signature over a SHA-384 digest"
"${PT[@]}" --login --verify --id 01 -m ECDSA --signature-format openssl \
  -i "$T/dig" --signature-file "$T/sig" >"$T/out" 2>&1 || { cat "$T/out"; fail "verify"; }
grep -q "Signature is valid" "$T/out" || fail "pkcs11-tool --verify"
pass "raw ECDSA over a SHA-384 digest; C_Verify agrees"

"${PT[@]}" --login --sign --id 02 -m SHA256-RSA-PKCS -i "$T/msg" -o "$T/sig" \
  >/dev/null 2>&1 || fail "SHA256-RSA-PKCS sign"
openssl dgst -sha256 -verify "$T/rsa.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
  fail "OpenSSL rejects the SHA256-RSA-PKCS signature"
pass "SHA256-RSA-PKCS, verified by OpenSSL"

# RSA-PKCS over anything but a DigestInfo is refused by the module, before
# keyd (pkcs11-tool hides C_Sign's CKR_DATA_INVALID behind its multi-part
# retry; p11drive checks the code itself).
before=$(grep -c '"op":"sign","key":"sip-rsa"' "$T/audit.jsonl")
if "${PT[@]}" --login --sign --id 02 -m RSA-PKCS -i "$T/msg" -o "$T/sig" >"$T/out" 2>&1; then
  fail "RSA-PKCS signed a message that is not a DigestInfo"
fi
[[ $(grep -c '"op":"sign","key":"sip-rsa"' "$T/audit.jsonl") -eq $before ]] ||
  fail "the RSA-PKCS request over a message reached keyd"
pass "RSA-PKCS over a non-DigestInfo: refused in the module"

"${PT[@]}" --login --sign --id 03 -m EDDSA -i "$T/msg" -o "$T/sig" >/dev/null 2>&1 ||
  fail "EDDSA sign"
openssl pkeyutl -verify -pubin -inkey "$T/ed.pem" -rawin -in "$T/msg" -sigfile "$T/sig" >/dev/null ||
  fail "OpenSSL rejects the Ed25519 signature"
pass "EDDSA, verified by OpenSSL"

openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
  -in "$T/msg" -out "$T/ct"
"${PT[@]}" --login --decrypt --id 02 -m RSA-PKCS-OAEP --hash-algorithm SHA-1 \
  --mgf MGF1-SHA1 -i "$T/ct" -o "$T/pt" >/dev/null 2>&1 || fail "OAEP decrypt"
cmp -s "$T/pt" "$T/msg" || fail "OAEP decrypted to something else"
pass "RSA-PKCS-OAEP decryption"

# Hidden Ed25519 (for libp11's engine).
KEYD_PKCS11_HIDE_ED25519=1 "${PT[@]}" --login --list-objects >"$T/objs" 2>&1
grep -q "EC_EDWARDS" "$T/objs" && fail "Ed25519 shown with KEYD_PKCS11_HIDE_ED25519=1"
printf 'hide_ed25519 = yes\n' >> "$T/pkcs11.conf"
"${PT[@]}" --login --list-objects >"$T/objs" 2>&1
grep -q "EC_EDWARDS" "$T/objs" && fail "Ed25519 shown with hide_ed25519 = yes"
[[ $(grep -c "^Private Key Object" "$T/objs") -eq 3 ]] || fail "hiding Ed25519 hid other keys"
pass "Ed25519 hidden by the environment and by the config file"

# Four signatures were asked of keyd (verification is local).
n=$(grep -c '"op":"sign",.*"result":"ok"' "$T/audit.jsonl")
[[ $n -eq 4 ]] || fail "keyd audited $n signatures, not 4"
grep -q '"op":"cert","key":"sip-tls","result":"ok"' "$T/audit.jsonl" || fail "audit: no cert request"
pass "keyd audited the signatures and the certificate read"
