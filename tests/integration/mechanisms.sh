#!/usr/bin/env bash
# mechanisms.sh: keyd checks each key's ops against the token's mechanism
# list (C_GetMechanismList, C_GetMechanismInfo) at start-up. A key whose
# op the token cannot do is a start-up error, and a --check-config error,
# naming the op, the key and the mechanism; a variant the token lacks
# (RSA-PSS) is a warning. A TPM 2.0 and opencryptoki lack CKM_AES_GCM:
# keyd-p11shim.so's P11SHIM_HIDE_MECHS makes SoftHSM2 look the same, so
# that each case is checked on one token.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=mechs
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
keygen EC:prime256v1 audit 09
openssl rand 32 > "$T/kek.bin"
p11 --write-object "$T/kek.bin" --type secrkey --key-type AES:32 \
  --label kek --id 31 --sensitive >/dev/null 2>&1
rm -f "$T/kek.bin"
write_pin
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = sign, decrypt
[key kek]
uri = pkcs11:token=$TOKEN;object=kek;type=secret-key
ops = srtp-new, srtp-open
[client me]
uid = $(id -u)
keys = p256, rsa, kek
ops = sign, decrypt, srtp-new, srtp-open, status
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }

# check_refuses HIDDEN WANT: with HIDDEN hidden, --check-config and a start
# both fail with WANT on stderr.
check_refuses() {
  local rc=0
  P11SHIM_HIDE_MECHS=$1 "$KEYD" -c "$T/keyd.conf" --check-config > "$T/out" 2> "$T/err" || rc=$?
  [[ $rc -ne 0 ]] || fail "--check-config passed with $1 hidden"
  grep -qF -- "$2" "$T/err" || fail "--check-config with $1 hidden said: $(cat "$T/err")"
  rc=0
  P11SHIM_HIDE_MECHS=$1 timeout 30 "$KEYD" -c "$T/keyd.conf" > "$T/out" 2> "$T/err" || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] || fail "keyd started (or hung: $rc) with $1 hidden"
  grep -qF -- "$2" "$T/err" || fail "keyd with $1 hidden said: $(cat "$T/err")"
  [[ ! -e $T/run/keyd.sock ]] || fail "keyd left a socket after refusing to start"
  pass "$1 missing: $2"
}

tok="token '$TOKEN'"
check_refuses CKM_AES_GCM "key 'kek' has ops = srtp-new/srtp-open, but $tok cannot do SRTP key wrapping (AES-GCM, see docs/srtp.md): CKM_AES_GCM is not in its mechanism list"
check_refuses CKM_ECDSA "key 'p256' has ops = sign, but $tok cannot do ECDSA signatures: CKM_ECDSA is not in its mechanism list"
check_refuses CKM_RSA_PKCS_OAEP "key 'rsa' has ops = decrypt, but $tok cannot do RSA-OAEP decryption: CKM_RSA_PKCS_OAEP is not in its mechanism list"
check_refuses CKM_RSA_PKCS "key 'rsa' has ops = sign, but $tok cannot do RSA PKCS#1 v1.5 signatures: CKM_RSA_PKCS is not in its mechanism list"

# The audit key is checked as a key: a token without CKM_ECDSA cannot sign
# checkpoints with it, even where no client key needs CKM_ECDSA.
cp "$T/keyd.conf" "$T/full.conf"
sed -i 's/^keys = p256, rsa, kek$/keys = rsa, kek/; /^\[key p256\]/,/^ops = sign$/d' "$T/keyd.conf"
grep -q '^\[key p256\]' "$T/keyd.conf" && fail "sed left [key p256] in the config"
check_refuses CKM_ECDSA "audit_key pkcs11:token=$TOKEN;object=audit;type=private signs the audit log's checkpoints, but $tok cannot do ECDSA signatures: CKM_ECDSA is not in its mechanism list"
cp "$T/full.conf" "$T/keyd.conf"

# A variant the token lacks: a warning at start-up, and keyd serves.
export P11SHIM_HIDE_MECHS=CKM_RSA_PKCS_PSS
start_keyd
grep -qF "token '$TOKEN' lacks CKM_RSA_PKCS_PSS (it is not in its mechanism list): requests for rsa-pss-* signatures with key 'rsa' will fail" "$T/keyd.log" ||
  fail "no warning about CKM_RSA_PKCS_PSS: $(cat "$T/keyd.log")"
printf 'REGISTER sip:example.com SIP/2.0\r\n' > "$T/msg"
"$KEYDCTL" sign rsa -a rsa-pkcs1-sha256 -i "$T/msg" -o "$T/sig" || fail "rsa-pkcs1-sha256"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" || fail "ecdsa-sha256"
stop_keyd
pass "CKM_RSA_PKCS_PSS missing: a warning, and keyd serves the rest"

# Nothing hidden: no warning, and --check-config passes.
unset P11SHIM_HIDE_MECHS
"$KEYD" -c "$T/keyd.conf" --check-config > "$T/out" 2> "$T/err" || fail "--check-config: $(cat "$T/err")"
grep -q "lacks\|cannot do" "$T/err" && fail "a mechanism warning with nothing hidden: $(cat "$T/err")"
pass "every mechanism there: --check-config passes without a warning"
