#!/usr/bin/env bash
# backup_badinput.sh: every bad input of issue 3 gets an error that names
# the problem, from keyd-backup verify (no token) and restore, and a
# restore that refuses writes nothing to the token:
#   a wrong checksum word, a share from another set or bundle, duplicate
#   shares, too few shares, a truncated or tampered bundle, a bundle whose
#   fingerprint differs from the sheet's, a wrong passphrase.
# Also: shares typed on standard input (the prompt's path without a
# terminal), with a bad one refused at once.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
PROBE=$KEYD_BUILD_DIR/tests/backup_probe
M=$SOFTHSM_MODULE
for f in "$KB" "$PROBE"; do [[ -x $f ]] || fail "$f is not built"; done

S1=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
S2=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$S1" "$S2"; (exit $rc); cleanup' EXIT

make_token A
make_token B
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
printf 'correct horse battery staple\n' > "$T/pass"
printf 'correct horse battery stapler\n' > "$T/wrongpass"

"$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --type ec:p256 --label sip-tls --id 01 --usage sign >/dev/null || fail "keygen"
mk_set() {  # mk_set DIR BUNDLE: a 2-of-3 set with the passphrase
  "$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
    --so-pin-file "$T/sopin" --key pkcs11:object=sip-tls --threshold 2 \
    --shares 3 --passphrase-file "$T/pass" --iteration-exponent 0 \
    --bundle "$2" --shares-dir "$1" >/dev/null 2>"$T/err" || { cat "$T/err" >&2; fail "create $2"; }
}
mk_set "$S1" "$T/b1.kbk"
mk_set "$S2" "$T/b2.kbk"
mapfile -t a < <(ls "$S1"/share-*.txt)
mapfile -t b < <(ls "$S2"/share-*.txt)
FP1=$(sha256sum "$T/b1.kbk" | cut -d' ' -f1)

verify() { "$KB" verify --bundle "$T/b1.kbk" --passphrase-file "$T/pass" "$@"; }
restore() {
  "$KB" restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
    --passphrase-file "$T/pass" "$@"
}
b_blank() {
  [[ -z $("$PROBE" attrs "$M" B "$T/pin" sip-tls) ]] || fail "$1: something was written to token B"
}
# bad NAME PATTERN ARGS...: verify and restore (with the same shares and
# bundle) both fail saying PATTERN, and B stays blank.
bad() {
  local name=$1 pat=$2; shift 2
  expect_fail "$pat" verify "$@"
  expect_fail "$pat" restore --bundle "$T/b1.kbk" "$@"
  grep -q "correct horse" "$T/err" && fail "$name: the passphrase is in an error"
  grep -qi "$(sed -n 's/^mnemonic: \([a-z]* [a-z]* [a-z]* [a-z]* [a-z]* [a-z]*\).*/\1/p' "${a[0]}")" "$T/err" &&
    fail "$name: a share's words are in an error"
  b_blank "$name"
  pass "$name"
}

# A wrong checksum word: word 12 of share 1 replaced by another word.
w12=$(sed -n 's/^mnemonic: //p' "${a[0]}" | cut -d' ' -f12)
other=academic; [[ $w12 == academic ]] && other=acid
sed "s/^\(mnemonic: \([a-z]* \)\{11\}\)$w12 /\1$other /" "${a[0]}" > "$T/typo.txt"
cmp -s "$T/typo.txt" "${a[0]}" && fail "the typo was not made"
bad "wrong checksum word" \
  "keyd-backup: share 1 ($T/typo.txt): word 12 (\"$other\") is probably wrong: checksum does not match" \
  --share-file "$T/typo.txt" --share-file "${a[1]}"

# A share of another set, as its sheet (set id) and as bare words.
bad "share from another set (sheet)" \
  "keyd-backup: share 2 (${b[1]}) is a share of backup set [0-9a-f]*, not of the bundle's set" \
  --share-file "${a[0]}" --share-file "${b[1]}"
sed -n 's/^mnemonic: //p' "${b[1]}" > "$T/other-words.txt"
bad "share from another set (words only)" \
  "keyd-backup: share 2 ($T/other-words.txt) \(belongs to another backup set than bundle set [0-9a-f]* (its identifier differs)\|(group 1, member 2) does not match its commitment in the bundle\)" \
  --share-file "${a[0]}" --share-file "$T/other-words.txt"

# A share for another bundle: a sheet of this set, but a bundle made
# by a second create (its own set): the sheet's set id differs.
expect_fail "keyd-backup: share 1 (${a[0]}) is a share of backup set" \
  "$KB" verify --bundle "$T/b2.kbk" --share-file "${a[0]}"
pass "share for another bundle"

# Duplicate shares.
bad "duplicate shares" \
  "keyd-backup: share 2 (${a[1]}) is the same share as share 1 (group 1, member 2); give each share once" \
  --share-file "${a[1]}" --share-file "${a[1]}"

# Too few shares: restore needs 2.
expect_fail "keyd-backup: 1 of the 2 shares needed were given; add 1 more" \
  restore --bundle "$T/b1.kbk" --share-file "${a[2]}"
b_blank "too few shares"
verify --share-file "${a[2]}" >"$T/out" 2>&1 || fail "verify of one share failed"
grep -q "^1 share checked alone; at least 2 are needed to check the bundle MAC too$" "$T/out" ||
  fail "verify of one share: $(cat "$T/out")"
pass "too few shares"

# A truncated bundle.
head -c -7 "$T/b1.kbk" > "$T/trunc.kbk"
expect_fail "keyd-backup: bundle $T/trunc.kbk is truncated, altered or not a bundle: truncated: the MAC is missing; use another copy of the bundle" \
  "$KB" verify --bundle "$T/trunc.kbk"
expect_fail "keyd-backup: bundle $T/trunc.kbk is truncated, altered or not a bundle" \
  restore --bundle "$T/trunc.kbk" --share-file "${a[0]}" --share-file "${a[1]}"
b_blank "truncated bundle"
pass "truncated bundle"

# A tampered bundle: one bit of the wrapped key flipped (200 bytes from
# the end: inside the key record, before the commitments). The sheets'
# fingerprint catches it; with words only, the MAC does.
cp "$T/b1.kbk" "$T/tamper.kbk"
off=$(( $(stat -c %s "$T/tamper.kbk") - 200 ))
byte=$(od -An -tu1 -j "$off" -N1 "$T/tamper.kbk" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$T/tamper.kbk" bs=1 seek="$off" conv=notrunc 2>/dev/null
cmp -s "$T/b1.kbk" "$T/tamper.kbk" && fail "the bundle was not altered"
expect_fail "keyd-backup: bundle $T/tamper.kbk has fingerprint .*, but share file ${a[0]} says .*: this is not the bundle the shares were made for, or it was altered" \
  restore --bundle "$T/tamper.kbk" --share-file "${a[0]}" --share-file "${a[1]}"
sed -n 's/^mnemonic: //p' "${a[0]}" > "$T/w0.txt"
sed -n 's/^mnemonic: //p' "${a[1]}" > "$T/w1.txt"
expect_fail "keyd-backup: wrong passphrase, or an altered bundle: the shares each match their commitments and combine, but the bundle's MAC does not verify" \
  restore --bundle "$T/tamper.kbk" --share-file "$T/w0.txt" --share-file "$T/w1.txt"
b_blank "tampered bundle"
pass "tampered bundle"

# A bundle whose fingerprint differs from the sheet's (typed from paper).
wrongfp=$(echo "$FP1" | sed 's/^./f/; s/^ff/0f/')
[[ $wrongfp != "$FP1" ]] || wrongfp=0${FP1:1}
expect_fail "keyd-backup: bundle $T/b1.kbk has fingerprint .*, but --bundle-fingerprint says" \
  verify --bundle-fingerprint "$wrongfp" --share-file "${a[0]}"
expect_fail "but --bundle-fingerprint says" \
  restore --bundle "$T/b1.kbk" --bundle-fingerprint "$wrongfp" --share-file "${a[0]}" --share-file "${a[1]}"
b_blank "fingerprint differs"
# The bundle of set 2 given with the sheets of set 1 and set 1's
# fingerprint: the fingerprint check names it.
expect_fail "keyd-backup: bundle $T/b2.kbk has fingerprint" \
  "$KB" verify --bundle "$T/b2.kbk" --bundle-fingerprint "$FP1"
pass "bundle fingerprint differs from the sheet's"

# A wrong passphrase, and none at all.
expect_fail "keyd-backup: wrong passphrase, or an altered bundle" \
  "$KB" verify --bundle "$T/b1.kbk" --passphrase-file "$T/wrongpass" --share-file "${a[0]}" --share-file "${a[2]}"
expect_fail "keyd-backup: wrong passphrase, or an altered bundle" \
  "$KB" restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/b1.kbk" --share-file "${a[0]}" --share-file "${a[2]}"
b_blank "wrong passphrase"
pass "wrong passphrase"

# Shares on standard input, one a line, as typed at the prompt: a share
# with a bad word is refused at once, naming the word; the rest restore.
{ sed -n 's/^mnemonic: //p' "$T/typo.txt"; cat "$T/w1.txt"; sed -n 's/^mnemonic: //p' "${a[2]}"; } > "$T/typed"
expect_fail "keyd-backup: share 1: word 12 (\"$other\") is probably wrong: checksum does not match" \
  restore --bundle "$T/b1.kbk" < "$T/typed"
b_blank "typed share with a bad word"
{ cat "$T/w1.txt"; sed -n 's/^mnemonic: //p' "${a[2]}"; } > "$T/typed"
restore --bundle "$T/b1.kbk" < "$T/typed" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "restore from typed shares"; }
grep -q "^restored 1 key onto token 'B'" "$T/out" || fail "restore from typed shares: $(cat "$T/out")"
[[ -n $("$PROBE" attrs "$M" B "$T/pin" sip-tls) ]] || fail "restore from typed shares wrote nothing"
pass "shares read one a line from standard input"

# Output order in a log: standard output and standard error to one file,
# as a ceremony log or a CI job keeps them. The line for the good share
# is written when it is said, before the error about the next one, not
# when keyd-backup exits (standard output is line-buffered).
verify --share-file "${a[1]}" --share-file "$T/typo.txt" >"$T/both" 2>&1 &&
  fail "verify took a share with a wrong word"
good=$(grep -n "^share 1 (${a[1]}): group 1, member 2: matches its commitment" "$T/both" | cut -d: -f1)
err_at=$(grep -n "^keyd-backup: share 2 ($T/typo.txt): word 12 " "$T/both" | cut -d: -f1)
[[ -n $good && -n $err_at && $good -lt $err_at ]] ||
  fail "stdout and stderr out of order in one log: $(cat "$T/both")"
pass "a share's line comes before the next share's error in a log of both"
