#!/usr/bin/env bash
# backup_drill.sh: the full backup drill of issue 3 on real SoftHSM2 tokens.
#   1. keyd-backup keygen makes EC P-256, RSA-2048 and AES-256 keys on A;
#   2. keyd-backup create backs them up, 2 of 3 shares;
#   3. keyd-backup restore puts them on a blank token B from another subset
#      of the shares than verify used;
#   4. a signature made on B (by pkcs11-tool) verifies (by openssl) with
#      the public key pkcs11-tool read from A;
#   5. the AES key on B has A's check value;
#   6. the restored keys are sensitive and wrap-with-trusted, with A's
#      usage flags (read by backup_probe, PKCS#11 straight to the token),
#      and still cannot be wrapped under a key the user makes.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
PROBE=$KEYD_BUILD_DIR/tests/backup_probe
M=$SOFTHSM_MODULE
for f in "$KB" "$PROBE"; do [[ -x $f ]] || fail "$f is not built"; done

SHARES=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$SHARES"; (exit $rc); cleanup' EXIT

make_token A
make_token B
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"

kb_keygen() {
  "$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" "$@" \
    >>"$T/keygen.out" 2>"$T/err" || { cat "$T/err" >&2; fail "keygen $*"; }
}
probe() { "$PROBE" attrs "$M" "$1" "$T/pin" "$2"; }

# 1. keygen.
kb_keygen --type ec:p256 --label sip-tls --id 01 --usage sign
kb_keygen --type rsa:2048 --label sip-tls-rsa --id 02 --usage sign,decrypt
kb_keygen --type aes:256 --label srtp-kek --id 03 --usage srtp
pass "keygen made EC P-256, RSA-2048 and AES-256 keys on A"

TOKEN=A
export_pub 01 "$T/ec-A.pem"
export_pub 02 "$T/rsa-A.pem"
for l in sip-tls sip-tls-rsa srtp-kek; do probe A "$l" | sort > "$T/A-$l"; done
grep -qx 'class=private sensitive=1 extractable=1 wrap_with_trusted=1 never_extractable=0 sign=1 decrypt=0 unwrap=0 derive=0' "$T/A-sip-tls" ||
  fail "EC key on A: $(cat "$T/A-sip-tls")"
kcv_a=$(sed -n 's/.* check_value=\([0-9a-f]*\)$/\1/p' "$T/A-srtp-kek")
[[ $kcv_a =~ ^[0-9a-f]{6}$ ]] || fail "no check value on A's AES key: $(cat "$T/A-srtp-kek")"

# 2. create, 2 of 3.
"$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key 'pkcs11:token=A;object=sip-tls' \
  --key 'pkcs11:object=sip-tls-rsa;type=private' --key 'pkcs11:id=%03' \
  --threshold 2 --shares 3 --iteration-exponent 0 \
  --bundle "$T/backup.kbk" --shares-dir "$SHARES" >"$T/create.out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "create"; }
mapfile -t sheets < <(ls "$SHARES"/share-*-g1-m*.txt)
[[ ${#sheets[@]} -eq 3 ]] || fail "create wrote ${#sheets[@]} share files, not 3"
for s in "${sheets[@]}"; do
  [[ $(stat -c %a "$s") == 400 ]] || fail "$s has mode $(stat -c %a "$s"), not 0400"
  grep -q '^mnemonic: \([a-z]* \)\{32\}[a-z]*$' "$s" || fail "$s holds no 33-word mnemonic"
done
fp=$(sha256sum "$T/backup.kbk" | cut -d' ' -f1)
grep -q "^bundle-fingerprint: $(echo "$fp" | sed 's/..../& /g; s/ $//')\$" "${sheets[0]}" ||
  fail "the sheet's fingerprint is not the SHA-256 of the bundle file"
grep -q "^wrap mechanism: CKM_AES_KEY_WRAP_PAD" "$T/create.out" || fail "create: $(cat "$T/create.out")"
pass "create wrote the bundle and three 0400 share sheets with its SHA-256"

# No share lingers on the token, and A's keys are untouched.
[[ -z $(probe A keyd-backup-bmk) ]] || fail "a BMK object is left on A"
for l in sip-tls sip-tls-rsa srtp-kek; do
  diff <(probe A "$l" | sort) "$T/A-$l" >/dev/null || fail "create changed $l on A"
done

# One officer checks one share alone, then shares 1 and 2 together.
"$KB" verify --bundle "$T/backup.kbk" --bundle-fingerprint "$fp" \
  --share-file "${sheets[0]}" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "verify one share"; }
grep -q "^share 1 (.*): group 1, member 1: matches its commitment in the bundle$" "$T/out" ||
  fail "verify one share: $(cat "$T/out")"
"$KB" verify --bundle "$T/backup.kbk" --share-file "${sheets[0]}" \
  --share-file "${sheets[1]}" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "verify two shares"; }
grep -q "^the 2 shares combine and the bundle MAC verifies" "$T/out" || fail "verify: $(cat "$T/out")"
pass "verify: one share against its commitment, two against the MAC"

# 3. restore onto blank B from shares 2 and 3 (not the pair verify used).
"$KB" restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/backup.kbk" --share-file "${sheets[2]}" \
  --share-file "${sheets[1]}" >"$T/restore.out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "restore"; }
[[ $(grep -c "^restored .* matches; self-test: " "$T/restore.out") -eq 3 ]] ||
  fail "restore report: $(cat "$T/restore.out")"
grep -q "^restored aes:256 key 'srtp-kek' id 03: check value $kcv_a matches" "$T/restore.out" ||
  fail "restore report for the AES key: $(cat "$T/restore.out")"
pass "restore onto B from shares 3 and 2"

# 4. Signatures made on B verify with A's public keys.
TOKEN=B
echo "drill message $RANDOM" > "$T/msg"
openssl dgst -sha256 -binary "$T/msg" > "$T/msg.sha256"
p11 --sign --id 01 -m ECDSA --signature-format openssl -i "$T/msg.sha256" \
  -o "$T/ec.sig" >/dev/null 2>&1 || fail "pkcs11-tool cannot sign with B's EC key"
openssl dgst -sha256 -verify "$T/ec-A.pem" -signature "$T/ec.sig" "$T/msg" >/dev/null ||
  fail "B's ECDSA signature does not verify with A's public key"
p11 --sign --id 02 -m SHA256-RSA-PKCS -i "$T/msg" -o "$T/rsa.sig" >/dev/null 2>&1 ||
  fail "pkcs11-tool cannot sign with B's RSA key"
openssl dgst -sha256 -verify "$T/rsa-A.pem" -signature "$T/rsa.sig" "$T/msg" >/dev/null ||
  fail "B's RSA signature does not verify with A's public key"
# And the judge can fail: a signature over another message does not verify.
echo "another message" > "$T/msg2"
if openssl dgst -sha256 -verify "$T/ec-A.pem" -signature "$T/ec.sig" "$T/msg2" >/dev/null 2>&1; then
  fail "openssl verified a signature over another message"
fi
# B's public key objects are A's.
export_pub 01 "$T/ec-B.pem"
cmp -s "$T/ec-A.pem" "$T/ec-B.pem" || fail "B's EC public key object differs from A's"
pass "signatures made on B verify with A's public keys"

# 5 and 6. Every attribute keyd-backup promises is A's, check value too.
for l in sip-tls sip-tls-rsa srtp-kek; do
  probe B "$l" | sort > "$T/B-$l"
  diff "$T/A-$l" "$T/B-$l" >&2 || fail "key $l on B differs from A"
  grep -q '^class=\(private\|secret\) sensitive=1 extractable=1 wrap_with_trusted=1 ' "$T/B-$l" ||
    fail "key $l on B is not sensitive and wrap-with-trusted: $(cat "$T/B-$l")"
done
grep -q " check_value=$kcv_a\$" "$T/B-srtp-kek" || fail "B's AES key lacks A's check value"
for l in sip-tls sip-tls-rsa srtp-kek; do
  [[ $("$PROBE" wrap-untrusted "$M" B "$T/pin" "$l") == CKR_KEY_NOT_WRAPPABLE ]] ||
    fail "restored key $l can be wrapped under a key the user made"
done
pass "restored keys: sensitive, wrap-with-trusted, A's usage and check value"

# A second restore onto B is refused before anything is written.
expect_fail "token 'B' already has an object labelled 'sip-tls'; restore onto a blank token" \
  "$KB" restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/backup.kbk" --share-file "${sheets[0]}" --share-file "${sheets[1]}"
[[ $(probe B sip-tls | wc -l) -eq 2 ]] || fail "the refused restore changed B"
pass "a restore onto a token that has the keys is refused"

# The bundle's MAC, recomputed by openssl alone from the specification in
# docs/backup.md: HKDF-SHA256(BMK, salt = set id, info) as the HMAC-SHA256
# key over every byte before the MAC. The BMK comes from two shares through
# keyd-backup shamir combine (SLIP-0039, no passphrase).
bmk=$(sed -n 's/^mnemonic: //p' "${sheets[0]}" "${sheets[2]}" | "$KB" shamir combine) ||
  fail "shamir combine of two sheets"
[[ $bmk =~ ^[0-9a-f]{64}$ ]] || fail "the BMK is not 32 bytes"
setid=$(sed -n 's/^set-id: //p' "${sheets[0]}")
mac_of() {  # mac_of FILE: the HMAC of FILE less its last 32 bytes, hex
  local k
  k=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$bmk" \
    -kdfopt "hexsalt:$setid" -kdfopt 'info:keyd-backup v1 bundle MAC key' HKDF | tr -d ':')
  head -c -32 "$1" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$k" -r | cut -d' ' -f1
}
[[ $(mac_of "$T/backup.kbk") == $(tail -c 32 "$T/backup.kbk" | od -An -tx1 | tr -d ' \n') ]] ||
  fail "the bundle's MAC is not HMAC-SHA256 under HKDF-SHA256 of the BMK"
pass "openssl recomputes the bundle's MAC from the BMK"

# All or nothing: a bundle, MAC'ed anew, whose AES key (the last one) has a
# wrong check value. EC and RSA keys are restored first, then the AES check
# fails, and blank token C must be left blank.
make_token C
kcv_bad=$(printf '%06x' $(( 0x$kcv_a ^ 0x000001 )))
perl -0777 -pe "s/\\x02\\x03\\x${kcv_a:0:2}\\x${kcv_a:2:2}\\x${kcv_a:4:2}/\\x02\\x03\\x${kcv_bad:0:2}\\x${kcv_bad:2:2}\\x${kcv_bad:4:2}/" \
  "$T/backup.kbk" | head -c -32 > "$T/bad.kbk"
cmp -s <(head -c -32 "$T/backup.kbk") "$T/bad.kbk" && fail "the check value was not changed"
cp "$T/bad.kbk" "$T/bad-body"
mac=$(mac_of <(cat "$T/bad-body"; head -c 32 /dev/zero))
printf "$(echo "$mac" | sed 's/../\\x&/g')" >> "$T/bad.kbk"
sed -n 's/^mnemonic: //p' "${sheets[0]}" > "$T/w1"
sed -n 's/^mnemonic: //p' "${sheets[2]}" > "$T/w3"
expect_fail "keyd-backup: restore failed, nothing was left on the token: key 'srtp-kek': the unwrapped key's check value differs from the bundle's" \
  "$KB" restore --module "$M" --token pkcs11:token=C --pin-file "$T/pin" \
  --bundle "$T/bad.kbk" --share-file "$T/w1" --share-file "$T/w3"
for l in sip-tls sip-tls-rsa srtp-kek; do
  [[ -z $("$PROBE" attrs "$M" C "$T/pin" "$l") ]] || fail "a failed restore left $l on C"
done
pass "a restore that fails at the third key leaves nothing on the token"
