#!/usr/bin/env bash
# backup_reshare.sh: keyd-backup reshare (issue 18) on real SoftHSM2 tokens.
#   1. a 2-of-3 set (with a passphrase) is reshared into 3 of 5, no token;
#   2. the new bundle: a new set id, SLIP-0039 identifier and fingerprint,
#      the extendable flag, the new policy, the same keys; its five sheets
#      name its fingerprint;
#   3. three new shares restore it onto blank token B, and B's keys sign
#      what A's public key verifies (EC) and have A's check value (AES);
#   4. two new shares do not: blank token C stays blank;
#   5. old and new shares give the same backup master key (SLIP-0039's
#      extendable backups), keyd-backup refuses to mix sets, and the old
#      shares still restore the old bundle, as docs/backup.md says;
#   6. reshare refuses too few shares, a wrong passphrase, an existing
#      --new-bundle or one in a missing directory, and leaves nothing
#      behind;
#   7. the reshared set reshares again into groups, with --pdf: each PDF
#      sheet is mode 0400 and names the new set, its bundle's fingerprint
#      and the holder's group and member; a shares directory on a disk is
#      refused without --allow-disk, nothing written;
#   8. like drill and rekey, reshare refuses to run while a process named
#      keyd runs, nothing written; --allow-online runs it and says so;
#   9. a --shares-dir that is a symbolic link is refused by reshare and
#      create, and nothing is written where it points.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
PROBE=$KEYD_BUILD_DIR/tests/backup_probe
M=$SOFTHSM_MODULE
for f in "$KB" "$PROBE"; do [[ -x $f ]] || fail "$f is not built"; done

OLD=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
NEW=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW"; (exit $rc); cleanup' EXIT

make_token A
make_token B
make_token C
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
printf 'correct horse battery staple\n' > "$T/pass"
printf 'correct horse battery stapler\n' > "$T/wrongpass"

for k in "ec:p256 sip-tls 01 sign" "aes:256 srtp-kek 03 srtp"; do
  set -- $k
  "$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
    --type "$1" --label "$2" --id "$3" --usage "$4" >/dev/null 2>"$T/err" ||
    { cat "$T/err" >&2; fail "keygen $2"; }
done
TOKEN=A
export_pub 01 "$T/ec-A.pem"
kcv_a=$("$PROBE" attrs "$M" A "$T/pin" srtp-kek | sed -n 's/.* check_value=\([0-9a-f]*\)$/\1/p')
[[ $kcv_a =~ ^[0-9a-f]{6}$ ]] || fail "no check value on A's AES key"

"$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key pkcs11:object=sip-tls --key pkcs11:object=srtp-kek \
  --threshold 2 --shares 3 --passphrase-file "$T/pass" --iteration-exponent 0 \
  --bundle "$T/old.kbk" --shares-dir "$OLD" >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "create"; }
mapfile -t old < <(ls "$OLD"/share-*.txt)
[[ ${#old[@]} -eq 3 ]] || fail "create wrote ${#old[@]} sheets"

# reshare, like drill and rekey, refuses to run where keyd runs: in a PID
# namespace with its own /proc if this machine allows one (root), so that
# another test's keyd is not seen; elsewhere with --allow-online (lib.sh).
offline_setup
reshare() { offline "$KB" reshare "${ONLINE[@]}" "$@"; }

# 6 first: refusals leave nothing behind.
expect_fail "1 of the 2 shares needed were given; add 1 more" \
  reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[0]}" --threshold 3 --shares 5 \
  --new-bundle "$T/new.kbk" --shares-dir "$NEW"
expect_fail "wrong passphrase, or an altered bundle" \
  reshare --bundle "$T/old.kbk" --passphrase-file "$T/wrongpass" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 3 --shares 5 \
  --new-bundle "$T/new.kbk" --shares-dir "$NEW"
expect_fail "bundle $T/old.kbk already exists; keyd-backup never replaces a bundle" \
  reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 3 --shares 5 \
  --new-bundle "$T/old.kbk" --shares-dir "$NEW"
expect_fail "keyd-backup: --new-bundle $T/none/new.kbk: its directory $T/none cannot take a new file" \
  reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 3 --shares 5 \
  --new-bundle "$T/none/new.kbk" --shares-dir "$NEW"
expect_fail "the threshold is more than the share count" \
  reshare --bundle "$T/old.kbk" --group-threshold 1 --group 4/3 \
  --new-bundle "$T/new.kbk" --shares-dir "$NEW"
[[ ! -e $T/new.kbk && -z $(ls -A "$NEW") && -z $(ls "$T" | grep '^\.\?new\.kbk') ]] ||
  fail "a refused reshare left files: $(ls -A "$T" "$NEW")"
pass "reshare refuses one share of two, a wrong passphrase, an existing bundle, a missing directory, a bad policy; nothing left"

# 1. Reshare 2 of 3 into 3 of 5 from old shares 1 and 3.
reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --bundle-fingerprint "$(sha256sum "$T/old.kbk" | cut -d' ' -f1)" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 3 --shares 5 \
  --new-bundle "$T/new.kbk" --shares-dir "$NEW" >"$T/reshare.out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "reshare"; }
grep -q "^the old shares still open the old bundle $T/old.kbk" "$T/reshare.out" ||
  fail "reshare does not say the old shares still work: $(cat "$T/reshare.out")"
grep -q "^policy: 1 of 1 groups: 3 of 5; SLIP-0039 identifier [0-9]*, extendable$" "$T/reshare.out" ||
  fail "reshare output: $(cat "$T/reshare.out")"
pass "reshare 2 of 3 into 3 of 5 from two old shares, no token"

# 2. The new bundle and its sheets.
mapfile -t new < <(ls "$NEW"/share-*-g1-m*.txt)
[[ ${#new[@]} -eq 5 ]] || fail "reshare wrote ${#new[@]} sheets, not 5"
fp_old=$(sha256sum "$T/old.kbk" | cut -d' ' -f1)
fp_new=$(sha256sum "$T/new.kbk" | cut -d' ' -f1)
[[ $fp_old != "$fp_new" ]] || fail "the new bundle has the old fingerprint"
grouped=$(echo "$fp_new" | sed 's/..../& /g; s/ $//')
for s in "${new[@]}"; do
  [[ $(stat -c %a "$s") == 400 ]] || fail "$s has mode $(stat -c %a "$s")"
  grep -qx "bundle-fingerprint: $grouped" "$s" || fail "$s does not name the new bundle's fingerprint"
  grep -q '^mnemonic: \([a-z]* \)\{32\}[a-z]*$' "$s" || fail "$s holds no 33-word mnemonic"
  grep -qx "policy: 1 of 1 groups" "$s" && grep -qx "  group 1: 3 of 5 shares" "$s" ||
    fail "$s does not give the new policy"
  grep -qx "passphrase: needed (it is not on any sheet)" "$s" || fail "$s: passphrase line"
  if grep -q "correct horse" "$s"; then fail "$s holds the passphrase"; fi
done
grep -q "bundle fingerprint (SHA-256): $grouped" "$T/reshare.out" || fail "reshare printed another fingerprint"
"$KB" inspect --bundle "$T/old.kbk" > "$T/old.txt"
"$KB" inspect --bundle "$T/new.kbk" > "$T/new.txt"
set_old=$(sed -n 's/^set id: //p' "$T/old.txt")
set_new=$(sed -n 's/^set id: //p' "$T/new.txt")
[[ -n $set_new && $set_old != "$set_new" ]] || fail "the new bundle has the old set id"
grep -qx "set-id: $set_new" "${new[0]}" || fail "the new sheet names another set"
id_old=$(sed -n 's/^shares: SLIP-0039 identifier \([0-9]*\),.*/\1/p' "$T/old.txt")
id_new=$(sed -n 's/^shares: SLIP-0039 identifier \([0-9]*\),.*/\1/p' "$T/new.txt")
[[ -n $id_new && $id_old != "$id_new" ]] || fail "the new set has the old SLIP-0039 identifier ($id_old)"
grep -q "^shares: SLIP-0039 identifier $id_new, extendable 1, iteration exponent 0, 32-byte master secret$" "$T/new.txt" ||
  fail "inspect of the new bundle: $(grep '^shares:' "$T/new.txt")"
[[ $(grep -c "^share group 1 member [1-5] commitment: " "$T/new.txt") -eq 5 ]] || fail "not 5 commitments"
# The keys are the old bundle's, byte for byte: the same inspect lines,
# and the old file's key section is in the new file.
diff <(sed -n '/^keys: /,$p' "$T/old.txt") <(sed -n '/^keys: /,$p' "$T/new.txt") >&2 ||
  fail "the new bundle's keys differ from the old one's"
# By docs/backup.md's layout: 42 bytes of header, then the policy (7 bytes
# and 2 a group: one group here), the keys, then the commitments (2 + 34 a
# share) and the MAC (32).
keys_of() { tail -c +52 "$1" | head -c -$(( 2 + 34 * $2 + 32 )) | sha256sum; }
[[ $(keys_of "$T/old.kbk" 3) == $(keys_of "$T/new.kbk" 5) ]] ||
  fail "the new bundle's key section is not the old one's, byte for byte"
if cmp -s <(tail -c +52 "$T/old.kbk") <(tail -c +52 "$T/new.kbk"); then
  fail "the bundles are the same after the header"
fi
pass "new bundle: new set id, identifier and fingerprint, extendable, 3 of 5, the old keys; 5 sheets name it"

# 3. Three new shares (2, 4, 5) restore it onto blank B.
"$KB" restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/new.kbk" --bundle-fingerprint "$fp_new" --passphrase-file "$T/pass" \
  --share-file "${new[1]}" --share-file "${new[3]}" --share-file "${new[4]}" \
  >"$T/restore.out" 2>"$T/err" || { cat "$T/err" >&2; fail "restore of the new bundle from 3 new shares"; }
grep -q "^restored aes:256 key 'srtp-kek' id 03: check value $kcv_a matches" "$T/restore.out" ||
  fail "restore report: $(cat "$T/restore.out")"
TOKEN=B
ec_signs_for 01 "$T/ec-A.pem"
grep -q " check_value=$kcv_a\$" <("$PROBE" attrs "$M" B "$T/pin" srtp-kek) ||
  fail "B's AES key lacks A's check value"
pass "three new shares restore the new bundle onto B; B signs for A's public key, A's check value"

# 4. Two new shares do not.
expect_fail "2 of the 3 shares needed were given; add 1 more" \
  "$KB" restore --module "$M" --token pkcs11:token=C --pin-file "$T/pin" \
  --bundle "$T/new.kbk" --passphrase-file "$T/pass" \
  --share-file "${new[0]}" --share-file "${new[2]}"
for l in sip-tls srtp-kek; do
  [[ -z $("$PROBE" attrs "$M" C "$T/pin" "$l") ]] || fail "the refused restore left $l on C"
done
"$KB" verify --bundle "$T/new.kbk" --share-file "${new[0]}" --share-file "${new[2]}" \
  >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "verify two new shares"; }
grep -q "^2 shares checked alone; at least 3 are needed" "$T/out" || fail "verify: $(cat "$T/out")"
pass "two new shares do not restore the new bundle; C is untouched"

# 5. Old and new shares give the same BMK (SLIP-0039 extendable backups:
# the same encrypted master secret under a new identifier).
words() { sed -n 's/^mnemonic: //p' "$@"; }
bmk_old=$(words "${old[1]}" "${old[2]}" | "$KB" shamir combine --passphrase-file "$T/pass") || fail "combine old"
bmk_new=$(words "${new[0]}" "${new[2]}" "${new[4]}" | "$KB" shamir combine --passphrase-file "$T/pass") || fail "combine new"
[[ $bmk_old =~ ^[0-9a-f]{64}$ && $bmk_old == "$bmk_new" ]] || fail "old and new shares give different master secrets"
bmk_wrong=$(words "${new[0]}" "${new[2]}" "${new[4]}" | "$KB" shamir combine --passphrase-file "$T/wrongpass") || fail "combine"
[[ $bmk_wrong != "$bmk_new" ]] || fail "a wrong passphrase gave the same secret"
# keyd-backup does not mix sets: an old share is not a share of the new bundle.
expect_fail "share 1 ($OLD/.*) is a share of backup set $set_old, not of the bundle's set $set_new" \
  "$KB" verify --bundle "$T/new.kbk" --share-file "${old[0]}"
words "${old[0]}" > "$T/w-old1"
expect_fail "share 1 ($T/w-old1) belongs to another backup set than bundle set $set_new (its identifier differs)" \
  "$KB" verify --bundle "$T/new.kbk" --share-file "$T/w-old1"
# The old shares still open the old bundle, as documented.
"$KB" restore --module "$M" --token pkcs11:token=C --pin-file "$T/pin" \
  --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[1]}" --share-file "${old[2]}" >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "the old shares no longer restore the old bundle"; }
grep -q "^restored 2 keys onto token 'C' from backup set $set_old" "$T/out" || fail "restore old: $(cat "$T/out")"
pass "old and new shares give the same BMK; sets are not mixed; the old shares still restore the old bundle"

# A reshared set reshares again, into groups: 2 of {2 of 3, 1 of 1}, with
# PDF sheets.
G=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G"; (exit $rc); cleanup' EXIT
# --pdf: the sheets go to paper too, under the text sheets' rules: a
# shares directory on a disk is refused without --allow-disk, before any
# share is read, and nothing is written.
DISK=
case $(stat -f -c %T "$KEYD_BUILD_DIR" 2>/dev/null) in
  tmpfs | ramfs | '') ;;
  *) DISK=$(mktemp -d "$KEYD_BUILD_DIR/keyd-test-disk.XXXXXX") ;;
esac
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G" ${DISK:+"$DISK"}; (exit $rc); cleanup' EXIT
if [[ -n $DISK ]]; then
  chmod 0700 "$DISK"
  expect_fail "keyd-backup: --shares-dir $DISK is not on tmpfs" \
    reshare --bundle "$T/new.kbk" --passphrase-file "$T/pass" \
    --share-file "${new[4]}" --share-file "${new[0]}" --share-file "${new[1]}" \
    --group-threshold 2 --group 2/3 --group 1/1 \
    --new-bundle "$T/groups.kbk" --shares-dir "$DISK" --pdf
  [[ -z $(ls -A "$DISK") && ! -e $T/groups.kbk ]] || fail "a refused reshare --pdf wrote files"
fi
reshare --bundle "$T/new.kbk" --passphrase-file "$T/pass" \
  --share-file "${new[4]}" --share-file "${new[0]}" --share-file "${new[1]}" \
  --group-threshold 2 --group 2/3 --group 1/1 \
  --new-bundle "$T/groups.kbk" --shares-dir "$G" --pdf >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "reshare into groups"; }
[[ $(ls "$G"/share-*-g1-m*.txt | wc -l) -eq 3 && $(ls "$G"/share-*-g2-m1.txt | wc -l) -eq 1 ]] ||
  fail "reshare into groups wrote: $(ls "$G")"
# Each PDF sheet (judged in full by backup_pdf): mode 0400, the new set id,
# the new bundle's fingerprint, the holder's group and member.
set_g=$("$KB" inspect --bundle "$T/groups.kbk" | sed -n 's/^set id: //p')
fp_g=$(sha256sum "$T/groups.kbk" | cut -d' ' -f1 | sed 's/..../& /g; s/ $//')
[[ $(ls "$G"/share-*.pdf | wc -l) -eq 4 ]] || fail "reshare --pdf wrote: $(ls "$G")"
for p in "$G"/share-*.pdf; do
  [[ $(stat -c %a "$p") == 400 ]] || fail "$p has mode $(stat -c %a "$p"), not 0400"
  gm=$(basename "$p" .pdf | sed 's/^share-[0-9a-f]*-g\([0-9]*\)-m\([0-9]*\)$/group \1, member \2 of/')
  pdftotext -layout "$p" "$T/sheet.txt" || fail "pdftotext $p"
  grep -qF "set-id: $set_g" "$T/sheet.txt" && grep -qF "$fp_g" "$T/sheet.txt" &&
    grep -qF "share: $gm" "$T/sheet.txt" ||
    fail "$p does not name the new set $set_g, its fingerprint and $gm: $(cat "$T/sheet.txt")"
done
"$KB" verify --bundle "$T/groups.kbk" --passphrase-file "$T/pass" \
  --share-file "$(ls "$G"/share-*-g1-m3.txt)" --share-file "$(ls "$G"/share-*-g2-m1.txt)" \
  --share-file "$(ls "$G"/share-*-g1-m1.txt)" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "verify groups"; }
grep -q "^the 3 shares combine and the bundle MAC verifies" "$T/out" || fail "verify groups: $(cat "$T/out")"
pass "a reshared set reshares again into two groups, whose quorum opens its bundle; its PDF sheets name it (mode 0400, refused on a disk)"

# 8. A process named keyd on the machine: refused before any share is
# read, nothing written; with --allow-online it runs and says why. In the
# namespace, so that the keyd it sees is the test's.
cp /bin/sleep "$T/keyd"
with_keyd() {  # with_keyd CMD...: CMD while a process named keyd runs
  offline bash -c '"$1" 30 & k=$!; shift
    for ((i = 0; i < 200; i++)); do [[ $(cat /proc/$k/comm 2>/dev/null) == keyd ]] && break; sleep 0.02; done
    "$@"; rc=$?; kill $k; exit $rc' \
    with_keyd "$T/keyd" "$@"
}
ON=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G" "$ON" ${DISK:+"$DISK"}; (exit $rc); cleanup' EXIT
if with_keyd "$KB" reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
    --share-file "${old[0]}" --share-file "${old[2]}" --threshold 2 --shares 3 \
    --new-bundle "$T/online.kbk" --shares-dir "$ON" >"$T/out" 2>"$T/err"; then
  fail "reshare ran while keyd ran"
fi
grep -q "^keyd-backup: keyd runs on this machine (pid [0-9, ]*): reshare here would put the backup master key in the memory of a host that serves keys on a network; run it on the offline ceremony machine, or give --allow-online" "$T/err" ||
  fail "reshare beside keyd: $(cat "$T/err")"
[[ ! -e $T/online.kbk && -z $(ls -A "$ON") ]] || fail "a reshare refused beside keyd wrote files"
with_keyd "$KB" reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 2 --shares 3 \
  --new-bundle "$T/online.kbk" --shares-dir "$ON" --allow-online >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "reshare --allow-online"; }
grep -q "^--allow-online: keyd runs on this machine (pid [0-9, ]*); reshare goes on as asked" "$T/out" ||
  fail "reshare --allow-online does not say why: $(cat "$T/out")"
[[ -s $T/online.kbk && $(ls "$ON" | wc -l) -eq 3 ]] || fail "reshare --allow-online wrote: $(ls "$ON")"
pass "reshare refuses while a keyd runs, nothing written; --allow-online runs it and says why"

# 9. A shares directory that is a symbolic link is refused, before any
# share is read or the token is opened: its target could be changed while
# the shares are typed. Nothing is written where it points.
L=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G" "$ON" "$L" ${DISK:+"$DISK"}; (exit $rc); cleanup' EXIT
mkdir -m 0700 "$L/real"
ln -s "$L/real" "$L/link"
expect_fail "keyd-backup: --shares-dir $L/link is a symbolic link; name the directory itself" \
  reshare --bundle "$T/old.kbk" --passphrase-file "$T/pass" \
  --share-file "${old[0]}" --share-file "${old[2]}" --threshold 2 --shares 3 \
  --new-bundle "$T/link.kbk" --shares-dir "$L/link"
expect_fail "keyd-backup: --shares-dir $L/link is a symbolic link; name the directory itself" \
  "$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key pkcs11:object=sip-tls --threshold 2 --shares 3 \
  --bundle "$T/link.kbk" --shares-dir "$L/link"
[[ ! -e $T/link.kbk && -z $(ls -A "$L/real") ]] || fail "a refused --shares-dir link was written to: $(ls -A "$L/real")"
pass "a --shares-dir that is a symbolic link is refused by reshare and create, nothing written"
