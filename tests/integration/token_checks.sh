#!/usr/bin/env bash
# token_checks.sh: keyd-token's own checks against a compromised
# socket-facing process. tp_raw starts keyd-token as the supervisor does
# and sends it requests keyd-serve never makes: raw RSA or PKCS#1 v1.5
# decryption with a key that is for OAEP only, raw RSA with a sign-only
# key, PSS parameters keyd does not use, SRTP AES-GCM with another IV or
# tag length. Each must be refused; what keyd-serve does send must work.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
source "$KEYD_SOURCE_DIR/tests/integration/srtp_lib.sh"

TOKEN=tpcheck
make_token $TOKEN
keygen rsa:2048 rsa-dec 01
keygen rsa:2048 rsa-sign 02
keygen EC:prime256v1 p256 03
import_kek kek 04
keygen rsa:2048 rsa-ir 05
write_pin
write_config <<CONF
[key rsa-dec]
uri = pkcs11:token=$TOKEN;object=rsa-dec;type=private
ops = decrypt
[key rsa-sign]
uri = pkcs11:token=$TOKEN;object=rsa-sign;type=private
ops = sign
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key kek]
uri = $(kek_uri kek)
ops = srtp-new, srtp-open
[key rsa-ir]
uri = pkcs11:token=$TOKEN;object=rsa-ir;type=private
ops = decrypt
pkcs1_decrypt = implicit-rejection
[client me]
uid = $(id -u)
keys = rsa-dec, rsa-sign, p256, kek, rsa-ir
ops = sign, decrypt, srtp-new, srtp-open
CONF

"$KEYD_BUILD_DIR/tests/tp_raw" "$KEYD_BUILD_DIR/keyd/keyd-token" \
  "$T/keyd.conf" "$PIN" 2>"$T/token.log" || {
  cat "$T/token.log" >&2
  fail "keyd-token accepted a request keyd-serve never makes, or refused one it does"
}
grep -q "may be compromised" "$T/token.log" ||
  fail "keyd-token did not log the refused mechanisms"
pass "keyd-token refuses mechanisms, parameters and GCM lengths keyd does not use"
