#!/usr/bin/env bash
# backup_keygen.sh: keyd-backup keygen's attributes, the wrap-with-trusted
# guarantee, create's refusals, and the ceremony's CSR made with openssl
# and libp11's engine (docs/ceremonies.md) against a real SoftHSM2 token.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
PROBE=$KEYD_BUILD_DIR/tests/backup_probe
M=$SOFTHSM_MODULE
for f in "$KB" "$PROBE"; do [[ -x $f ]] || fail "$f is not built"; done

SHARES=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
DISK=$(mktemp -d "$KEYD_BUILD_DIR/keyd-test-disk.XXXXXX")
trap 'rc=$?; rm -rf "$SHARES" "$DISK"; (exit $rc); cleanup' EXIT

make_token A
TOKEN=A
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
probe() { "$PROBE" attrs "$M" A "$T/pin" "$1"; }
kb() { "$KB" "$@" --module "$M" --token pkcs11:token=A --pin-file "$T/pin"; }

kb keygen --type ec:p256 --label sip-tls --id 01 --usage sign >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen ec:p256"; }
grep -q "^generated ec:p256 key 'sip-tls' id 01 on token 'A'$" "$T/out" || fail "keygen said: $(cat "$T/out")"
kb keygen --type rsa:3072 --label rsa-dec --id 02 --usage decrypt >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen rsa:3072"; }
kb keygen --type aes:128 --label kek --id 03 --usage srtp >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen aes:128"; }
kb keygen --type ec:p384 --label nobackup --id 04 --usage sign --no-backup >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen --no-backup"; }

# Exactly the usage asked for: SoftHSM2's defaults would add decrypt and
# unwrap to EC keys, wrap/unwrap/verify to AES keys.
want() { [[ $(probe "$1" | sort | tr '\n' '|') == "$2" ]] || fail "$1: $(probe "$1" | tr '\n' '|'), want $2"; }
want sip-tls 'class=private sensitive=1 extractable=1 wrap_with_trusted=1 never_extractable=0 sign=1 decrypt=0 unwrap=0 derive=0|class=public verify=1|'
want rsa-dec 'class=private sensitive=1 extractable=1 wrap_with_trusted=1 never_extractable=0 sign=0 decrypt=1 unwrap=0 derive=0|class=public verify=0|'
probe kek | has '^class=secret sensitive=1 extractable=1 wrap_with_trusted=1 never_extractable=0 sign=0 decrypt=1 unwrap=0 derive=0 encrypt=1 wrap=0 verify=0 check_value=[0-9a-f]\{6\}$' ||
  fail "kek: $(probe kek)"
want nobackup 'class=private sensitive=1 extractable=0 wrap_with_trusted=1 never_extractable=1 sign=1 decrypt=0 unwrap=0 derive=0|class=public verify=1|'
pass "keygen sets sensitive, extractable, wrap-with-trusted and only the usage asked"

# Wrap-with-trusted: no key from keygen can be wrapped under an AES key the
# user makes; a key pkcs11-tool made extractable (no wrap-with-trusted)
# can, which shows the probe tells the two apart.
for l in sip-tls rsa-dec kek; do
  got=$("$PROBE" wrap-untrusted "$M" A "$T/pin" "$l")
  [[ $got == CKR_KEY_NOT_WRAPPABLE ]] || fail "$l under a user's key: $got"
done
p11 --keypairgen --key-type EC:prime256v1 --label weak --id 05 --usage-sign \
  --sensitive --extractable >/dev/null 2>&1 || fail "pkcs11-tool keypairgen"
got=$("$PROBE" wrap-untrusted "$M" A "$T/pin" weak)
[[ $got == CKR_OK ]] || fail "the merely extractable key: $got"
pass "keygen's keys give CKR_KEY_NOT_WRAPPABLE under a user's AES key"

# Bad keygen requests.
expect_fail "keyd-backup: token 'A' already has an object labelled 'sip-tls'; choose another label" \
  kb keygen --type ec:p256 --label sip-tls --usage sign
expect_fail "EC and Ed25519 keys only sign; give --usage sign" \
  kb keygen --type ec:p256 --label x --usage decrypt
expect_fail "AES keys do not sign" kb keygen --type aes:256 --label x --usage sign
expect_fail "--type rsa:1024: give one of" kb keygen --type rsa:1024 --label x --usage sign
[[ $(probe x | wc -l) -eq 0 ]] || fail "a refused keygen made a key"
pass "keygen refuses a used label, a usage that does not fit, an unknown type"

# create's refusals, each before anything is written.
create() {
  kb create --so-pin-file "$T/sopin" --threshold 2 --shares 3 \
    --iteration-exponent 0 --bundle "$T/b.kbk" "$@"
}
expect_fail "key 'nobackup' (pkcs11:object=nobackup) cannot be backed up: it is not extractable (CKA_EXTRACTABLE is false)" \
  create --shares-dir "$SHARES" --key pkcs11:object=sip-tls --key pkcs11:object=nobackup
expect_fail "key 'weak' (pkcs11:object=weak) is refused: it is extractable without CKA_WRAP_WITH_TRUSTED, so anyone holding the user PIN can wrap it" \
  create --shares-dir "$SHARES" --key pkcs11:object=weak
if [[ $(stat -f -c %T "$DISK") != tmpfs ]]; then
  expect_fail "--shares-dir $DISK is not on tmpfs: shares written to a disk can linger there" \
    create --shares-dir "$DISK" --key pkcs11:object=sip-tls
fi
chmod 0644 "$T/sopin"
expect_fail "--so-pin-file: PIN file $T/sopin has mode 0644; it must be readable by its owner only" \
  create --shares-dir "$SHARES" --key pkcs11:object=sip-tls
printf '0000\n' > "$T/badso"; chmod 0400 "$T/badso"
expect_fail "security officer (SO) login to token 'A' failed: the PIN is wrong (check the SO PIN file)" \
  kb create --so-pin-file "$T/badso" --threshold 2 --shares 3 --bundle "$T/b.kbk" \
  --shares-dir "$SHARES" --key pkcs11:object=sip-tls
chmod 0400 "$T/sopin"
[[ ! -e $T/b.kbk && -z $(ls -A "$SHARES") ]] || fail "a refused create left files"
pass "create refuses non-backup-able keys, a disk shares dir, bad PIN files"

# --allow-disk takes removable media the officer names; a bundle is never
# replaced.
create --shares-dir "$DISK" --allow-disk --key pkcs11:object=sip-tls \
  --key pkcs11:object=rsa-dec --key pkcs11:object=kek >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "create --allow-disk"; }
[[ $(ls "$DISK" | wc -l) -eq 3 ]] || fail "create --allow-disk: $(ls "$DISK")"
expect_fail "bundle $T/b.kbk already exists; keyd-backup never replaces a bundle" \
  create --shares-dir "$SHARES" --key pkcs11:object=sip-tls
"$KB" inspect --bundle "$T/b.kbk" >"$T/out" || fail "inspect"
grep -q "^key 'rsa-dec'$" "$T/out" && grep -q "^  type: rsa:3072 (private key, public key with it)$" "$T/out" &&
  grep -q "^  type: aes:128 (secret key)$" "$T/out" && grep -q "^policy: 1 of 1 groups$" "$T/out" ||
  fail "inspect: $(cat "$T/out")"
pass "create --allow-disk, no bundle replaced, inspect shows the keys"

# The ceremony's CSR: openssl with libp11's engine signs it on the token,
# and it carries the token's public key.
export_pub 01 "$T/pub.pem"
PKCS11_MODULE_PATH=$M openssl req -new -engine pkcs11 -keyform engine \
  -key "pkcs11:token=A;object=sip-tls;type=private;pin-value=$PIN" \
  -subj "/CN=sbc.example.net" -out "$T/csr.pem" >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "openssl req with the pkcs11 engine"; }
openssl req -in "$T/csr.pem" -verify -noout 2>/dev/null || fail "the CSR's signature does not verify"
openssl req -in "$T/csr.pem" -pubkey -noout > "$T/csr-pub.pem"
cmp -s "$T/csr-pub.pem" "$T/pub.pem" || fail "the CSR's public key is not the token's"
pass "CSR made with openssl and libp11's engine carries the token's key"
