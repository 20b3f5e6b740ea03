#!/usr/bin/env bash
# rsa_pkcs1.sh: RSA PKCS#1 v1.5 decryption with implicit rejection through
# the real keyd and SoftHSM2, with Wycheproof's rsa_pkcs1_2048_test.json.
# The vectors' key is imported into the token; keyd serves it with
# pkcs1_decrypt = implicit-rejection. Valid cases decrypt to their message;
# every InvalidPkcs1Padding case gets a plaintext like a valid one, the same
# each time and the same after a restart (the secret behind the synthetic
# messages is derived from the key, not drawn at start-up); malformed
# ciphertexts get an error; a key without pkcs1_decrypt refuses; keydctl's
# -a rsa-pkcs1 works.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

VEC=$KEYD_SOURCE_DIR/tests/vectors/wycheproof_rsa_pkcs1_2048_test.json
TOOL=$KEYD_BUILD_DIR/tests/rsa_pkcs1_vectors

TOKEN=irtest
make_token $TOKEN
write_pin
"$TOOL" keyder "$VEC" "$T/wp.der" || fail "cannot convert the vector's key"
p11 --write-object "$T/wp.der" --type privkey --id 01 --label wp \
  --usage-decrypt --sensitive >/dev/null || fail "pkcs11-tool cannot import the key"
keygen rsa:2048 plain 02
write_config <<CONF
[key wp]
uri = pkcs11:token=$TOKEN;object=wp;type=private
ops = decrypt
pkcs1_decrypt = implicit-rejection
[key plain]
uri = pkcs11:token=$TOKEN;object=plain;type=private
ops = decrypt
[client me]
uid = $(id -u)
keys = wp, plain
ops = decrypt
CONF
"$KEYD" -c "$T/keyd.conf" --check-config >/dev/null ||
  fail "--check-config fails with pkcs1_decrypt"
start_keyd

"$TOOL" check "$VEC" wp plain "$T/synthetic1" || fail "Wycheproof vectors"
pass "Wycheproof vectors through libkeyd"

# keydctl: a valid case, and an invalid one answered like a valid one.
"$TOOL" file "$VEC" 3 ct "$T/ct3"
"$TOOL" file "$VEC" 3 msg "$T/msg3"
"$KEYDCTL" decrypt wp -a rsa-pkcs1 -i "$T/ct3" -o "$T/out" || fail "keydctl decrypt"
cmp -s "$T/msg3" "$T/out" || fail "keydctl: the plaintext differs"
"$TOOL" file "$VEC" 17 ct "$T/ct17"
"$KEYDCTL" decrypt wp -a rsa-pkcs1 -i "$T/ct17" -o "$T/out17" ||
  fail "keydctl: an invalid padding gave an error"
"$KEYDCTL" decrypt wp -a rsa-pkcs1 -i "$T/ct17" -o "$T/out17b"
cmp -s "$T/out17" "$T/out17b" || fail "keydctl: two answers for one ciphertext"
[[ $(grep -c '"op":"decrypt"' "$T/audit.jsonl") -gt 40 ]] || fail "decryptions not audited"
expect_fail "pkcs1_decrypt = implicit-rejection" \
  "$KEYDCTL" decrypt plain -a rsa-pkcs1 -i "$T/ct3" -o "$T/out"
pass "keydctl decrypt -a rsa-pkcs1"

# The plaintexts never reach the audit log or keyd's log.
h=$(od -An -tx1 "$T/out17" | tr -d ' \n'); h=${h:0:16}
[[ ${#h} -lt 8 ]] || ! grep -qi "$h" "$T/audit.jsonl" "$T/keyd.log" ||
  fail "a plaintext is in a log"

stop_keyd
start_keyd
"$TOOL" check "$VEC" wp plain "$T/synthetic2" || fail "Wycheproof vectors after a restart"
cmp -s "$T/synthetic1" "$T/synthetic2" ||
  fail "the synthetic messages changed across a restart"
pass "same synthetic messages after a restart"
