#!/usr/bin/env bash
# oaep_probe.sh: keyd's start-up test of which OAEP hashes each token
# decrypts with (keyd-p11shim.so makes the tokens fail). Tokens A and B
# hold the same RSA key (B restored from A's backup), B is the failover.
#   1. B fails with a device error while keyd tests it: B is a failed
#      failover token, A serves, and keyd still offers what A decrypts
#      with; --check-config fails on B.
#   2. The tokens refuse every OAEP hash (CKR_ARGUMENTS_BAD at
#      C_DecryptInit): keyd does not start, and names each hash's answer.
#   3. A key with pkcs1_decrypt: list names rsa-pkcs1 beside the hashes.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
KB=$KEYD_BUILD_DIR/keyd/keyd-backup
M=$SOFTHSM_MODULE
SHARES=$(mktemp -d /dev/shm/keyd-oaep.XXXXXX)
trap 'rc=$?; rm -rf "$SHARES"; (exit $rc); cleanup' EXIT
make_token A
make_token B
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"; chmod 0400 "$T/sopin"
kb() { "$KB" "$@" >>"$T/kb.out" 2>"$T/err" || { cat "$T/err" >&2; fail "keyd-backup $1"; }; }
kb keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" --type rsa:2048 --label rsa --id 01 --usage decrypt
kb create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" --so-pin-file "$T/sopin" \
  --key 'pkcs11:object=rsa;type=private' --threshold 2 --shares 2 --iteration-exponent 0 \
  --bundle "$T/backup.kbk" --shares-dir "$SHARES"
mapfile -t sheets < <(ls "$SHARES"/share-*.txt)
kb restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" --bundle "$T/backup.kbk" \
  --share-file "${sheets[0]}" --share-file "${sheets[1]}"
TOKEN=A
export_pub 01 "$T/rsa.pem"
write_config <<CONF
failover_token = pkcs11:token=B
[key rsa]
uri = pkcs11:token=A;object=rsa;type=private
ops = decrypt
[client me]
uid = $(id -u)
keys = rsa
ops = decrypt, status
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
head -c 32 /dev/urandom > "$T/p"
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
  -pkeyopt rsa_oaep_md:sha1 -in "$T/p" -out "$T/ct"

# 1. B fails for a moment while keyd tests it.
shim_ctl "fail CKR_DEVICE_ERROR 4 C_Decrypt token=B"
start_keyd
grep -q "failover token: token 'B' failed while keyd tested key 'rsa' with rsa-oaep-sha1: CKR_DEVICE_ERROR" "$T/keyd.log" ||
  fail "keyd did not say why B failed: $(cat "$T/keyd.log")"
shim_ctl
"$KEYDCTL" list > "$T/list" || fail "list"
grep -Eq '^rsa +rsa +2048 +decrypt \(rsa-oaep-sha1\)$' "$T/list" || fail "list after B failed: $(cat "$T/list")"
"$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out" || fail "A did not decrypt after B failed its test"
cmp -s "$T/p" "$T/out" || fail "the plaintext differs"
stop_keyd
pass "a failover token failing its test takes no hash away from the primary"
shim_ctl "fail CKR_DEVICE_ERROR 4 C_Decrypt token=B"
rc=0; "$KEYD" -c "$T/keyd.conf" --check-config > "$T/out" 2> "$T/err" || rc=$?
[[ $rc -eq 1 ]] || fail "--check-config exited $rc with the failover token failing"
grep -q "error: .*the failover token 'B' cannot serve (see above)" "$T/err" ||
  fail "--check-config did not name the failover token: $(cat "$T/err")"
shim_ctl
pass "--check-config fails on a failover token that cannot serve"

# 2. Both tokens refuse every OAEP hash: keyd does not start, and the error
#    names A's answer to each hash.
# 7: CKR_ARGUMENTS_BAD, SoftHSM2's answer to a hash it lacks.
shim_ctl "fail 7 100 C_DecryptInit token=A" "fail 7 100 C_DecryptInit token=B"
rc=0; timeout 30 "$KEYD" -c "$T/keyd.conf" > "$T/out" 2> "$T/err" || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "keyd started (or hung: $rc) with no OAEP hash on either token"
grep -q "key 'rsa' (pkcs11:token=A;object=rsa;type=private) has ops = decrypt, but token 'A' decrypted a test ciphertext with no OAEP hash (CKM_RSA_PKCS_OAEP, MGF1 of the same hash, no label; sha1: CKR_ARGUMENTS_BAD, sha256: CKR_ARGUMENTS_BAD, sha384: CKR_ARGUMENTS_BAD, sha512: CKR_ARGUMENTS_BAD)" "$T/err" ||
  fail "keyd did not name each hash's answer: $(cat "$T/err")"
shim_ctl
pass "no OAEP hash on the token: a start-up error naming each hash's answer"

# 3. pkcs1_decrypt: rsa-pkcs1 is offered too.
sed -i 's/^ops = decrypt$/ops = decrypt\npkcs1_decrypt = implicit-rejection/' "$T/keyd.conf"
start_keyd
"$KEYDCTL" list > "$T/list" || fail "list"
grep -Eq '^rsa +rsa +2048 +decrypt \(rsa-oaep-sha1,rsa-pkcs1\)$' "$T/list" || fail "list with pkcs1_decrypt: $(cat "$T/list")"
stop_keyd
pass "pkcs1_decrypt: list names rsa-pkcs1 beside the OAEP hash"
