#!/usr/bin/env bash
# backup_drill_cmd.sh: "keyd-backup drill" (issue 18) on real SoftHSM2
# tokens. A bundle of EC P-256, RSA-2048 and AES-256 keys made on A, 2 of 3
# shares:
#   1. the drill passes on A, the token that holds the keys, and on blank
#      token B, and leaves the object count of both unchanged
#      (pkcs11-tool --list-objects, logged in); its JSON report says what
#      was drilled;
#   2. it refuses to run while a process named keyd runs, unless
#      --allow-online, and then says why;
#   3. it fails, naming the key, when one key's wrapped bytes are altered
#      and the MAC recomputed (shares as bare words: a sheet's fingerprint
#      would refuse the altered bundle first); the other keys still pass;
#   4. it fails, naming the share, when a share has a wrong word;
# and after every failure the object counts are unchanged.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
M=$SOFTHSM_MODULE
[[ -x $KB ]] || fail "$KB is not built"

SHARES=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$SHARES"; (exit $rc); cleanup' EXIT

make_token A
make_token B
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"

for k in "ec:p256 sip-tls 01 sign" "rsa:2048 sip-tls-rsa 02 sign,decrypt" \
    "aes:256 srtp-kek 03 srtp"; do
  read -r type label id usage <<< "$k"
  "$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
    --type "$type" --label "$label" --id "$id" --usage "$usage" >/dev/null 2>"$T/err" ||
    { cat "$T/err" >&2; fail "keygen $k"; }
done
# The EC key last: its wrapped bytes end just before the commitments.
"$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key 'pkcs11:object=sip-tls-rsa;type=private' \
  --key 'pkcs11:object=srtp-kek' --key 'pkcs11:object=sip-tls;type=private' \
  --threshold 2 --shares 3 --iteration-exponent 0 \
  --bundle "$T/backup.kbk" --shares-dir "$SHARES" >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "create"; }
mapfile -t sheets < <(ls "$SHARES"/share-*-g1-m*.txt)
[[ ${#sheets[@]} -eq 3 ]] || fail "create wrote ${#sheets[@]} share files, not 3"
fp=$(sha256sum "$T/backup.kbk" | cut -d' ' -f1)
setid=$(sed -n 's/^set-id: //p' "${sheets[0]}")

# count TOKEN: the objects pkcs11-tool lists, logged in as the user.
count() {
  pkcs11-tool --module "$M" --token-label "$1" --login --pin "$PIN" \
    --list-objects 2>/dev/null | grep -c 'Object;' || true
}
count_A=$(count A)
[[ $count_A -eq 5 ]] || fail "A holds $count_A objects, not 5 (3 keys, 2 public keys)"
[[ $(count B) -eq 0 ]] || fail "B is not blank"
same_counts() {
  [[ $(count A) -eq $count_A ]] || fail "$1 changed A's object count ($(count A), was $count_A)"
  [[ $(count B) -eq 0 ]] || fail "$1 left $(count B) objects on B"
}

# Where no keyd may be seen: a PID namespace with its own /proc, if this
# machine allows one (root); elsewhere, where another test's keyd may run,
# the drill needs --allow-online (lib.sh).
offline_setup
drill() {  # drill TOKEN ARGS...: keyd-backup drill of backup.kbk unless ARGS say
  local tok=$1; shift
  offline "$KB" drill --module "$M" --token "pkcs11:token=$tok" --pin-file "$T/pin" \
    "${ONLINE[@]}" "$@"
}

# 1. On A, which holds the keys, from shares 1 and 3, with a report.
drill A --bundle "$T/backup.kbk" --share-file "${sheets[0]}" --share-file "${sheets[2]}" \
  --report "$T/drill-A.json" >"$T/out" 2>"$T/err" || { cat "$T/err" "$T/out" >&2; fail "drill on A"; }
[[ $(grep -c "^pass .* key '.*' id 0[123]: .* matches; self-test: " "$T/out") -eq 3 ]] ||
  fail "drill on A: not one passing line a key: $(cat "$T/out")"
grep -q "^pass ec:p256 key 'sip-tls' id 01: SPKI SHA-256 [0-9a-f]\{64\} matches; self-test: signature made on the token verified with the bundle's public key$" "$T/out" ||
  fail "drill on A, EC key: $(cat "$T/out")"
grep -q "^pass aes:256 key 'srtp-kek' id 03: check value [0-9a-f]\{6\} matches; self-test: AES-ECB" "$T/out" ||
  fail "drill on A, AES key: $(cat "$T/out")"
grep -q "^drill passed: all 3 keys of backup set $setid restore from these shares" "$T/out" ||
  fail "drill on A: $(cat "$T/out")"
[[ ! -s $T/err ]] || fail "drill on A wrote to stderr: $(cat "$T/err")"
same_counts "the drill on A"
# The report: one JSON object, read by jq.
r=$T/drill-A.json
[[ $(jq -r .result "$r") == pass ]] || fail "report: $(cat "$r")"
[[ $(jq -r .bundle_fingerprint "$r") == "$fp" ]] || fail "report's bundle fingerprint: $(cat "$r")"
[[ $(jq -r .set_id "$r") == "$setid" ]] || fail "report's set id: $(cat "$r")"
[[ $(jq -r .token "$r") == A ]] || fail "report's token: $(cat "$r")"
[[ $(jq -c .shares "$r") == '[{"group":1,"member":1},{"group":1,"member":3}]' ]] ||
  fail "report's shares: $(jq -c .shares "$r")"
[[ $(jq -r '.keys | map(.label + "=" + .result) | join(",")' "$r") == "sip-tls-rsa=pass,srtp-kek=pass,sip-tls=pass" ]] ||
  fail "report's keys: $(jq -c .keys "$r")"
[[ $(jq -r .date "$r") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]] || fail "report's date: $(cat "$r")"
pass "drill on A (the keys' token) passes for 3 keys, A's object count unchanged, JSON report"

# On blank B, from shares 2 and 3 on standard input, one a line.
sed -n 's/^mnemonic: //p' "${sheets[0]}" > "$T/w1"
sed -n 's/^mnemonic: //p' "${sheets[1]}" > "$T/w2"
sed -n 's/^mnemonic: //p' "${sheets[2]}" > "$T/w3"
cat "$T/w2" "$T/w3" | drill B --bundle "$T/backup.kbk" \
  >"$T/out" 2>"$T/err" || { cat "$T/err" "$T/out" >&2; fail "drill on B"; }
grep -q "^the shares of group 1 member 2, group 1 member 3 combine" "$T/out" || fail "drill on B: $(cat "$T/out")"
[[ $(grep -c "^pass " "$T/out") -eq 3 ]] || fail "drill on B: $(cat "$T/out")"
same_counts "the drill on B"
pass "drill on blank B (shares on standard input) passes, B still blank"

# A report is never replaced.
expect_fail "report $T/drill-A.json already exists" drill A --bundle "$T/backup.kbk" \
  --share-file "$T/w1" --share-file "$T/w2" --report "$T/drill-A.json"
# A report that cannot be written is refused before any share is read:
# the holders do not type their shares for a drill that ends in an error.
expect_fail "keyd-backup: --report $T/none/drill.json: its directory $T/none cannot take a new file" \
  drill A --bundle "$T/backup.kbk" --report "$T/none/drill.json" < "$T/w1"
grep -q "combine\|^pass " "$T/out" && fail "the drill ran with a report it cannot write: $(cat "$T/out")"

# 2. A process named keyd on the machine: refused, and with --allow-online
# the drill runs and says why. In the namespace, so that the keyd it sees
# is the test's.
cp /bin/sleep "$T/keyd"
with_keyd() {  # with_keyd CMD...: CMD while a process named keyd runs
  offline bash -c '"$1" 30 & k=$!; shift
    for ((i = 0; i < 200; i++)); do [[ $(cat /proc/$k/comm 2>/dev/null) == keyd ]] && break; sleep 0.02; done
    "$@"; rc=$?; kill $k; exit $rc' \
    with_keyd "$T/keyd" "$@"
}
if with_keyd "$KB" drill --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
    --bundle "$T/backup.kbk" --share-file "$T/w1" --share-file "$T/w2" >"$T/out" 2>"$T/err"; then
  fail "drill ran while keyd ran"
fi
grep -q "^keyd-backup: keyd runs on this machine (pid [0-9, ]*): the drill here would put the backup master key in the memory of a host that serves keys on a network; run it on the offline ceremony machine, or give --allow-online" "$T/err" ||
  fail "drill beside keyd: $(cat "$T/err")"
with_keyd "$KB" drill --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/backup.kbk" --share-file "$T/w1" --share-file "$T/w2" --allow-online \
  --report "$T/drill-online.json" >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "drill --allow-online"; }
grep -q "^--allow-online: keyd runs on this machine (pid [0-9, ]*); the drill goes on as asked" "$T/out" ||
  fail "drill --allow-online does not say why: $(cat "$T/out")"
[[ $(jq -r .online.allowed "$T/drill-online.json") == true &&
   $(jq -r '.online.keyd_pids | length' "$T/drill-online.json") -ge 1 ]] ||
  fail "report of the online drill: $(cat "$T/drill-online.json")"
same_counts "the refused and the online drill"
pass "drill refuses while a keyd runs; --allow-online runs it and says why"

# 3. The EC key's wrapped bytes altered, the MAC recomputed from the BMK
# (docs/backup.md: HMAC-SHA256 under HKDF-SHA256(BMK, salt = set id,
# info)). The EC key is the last: its wrapped bytes end before the
# commitments (u16 count, 3 x 34 bytes) and the MAC (32 bytes).
bmk=$("$KB" shamir combine < <(cat "$T/w1" "$T/w3")) || fail "shamir combine"
[[ $bmk =~ ^[0-9a-f]{64}$ ]] || fail "the BMK is not 32 bytes"
mac_of() {  # mac_of BODY: the bundle MAC of BODY (a bundle less its MAC), hex
  local k
  k=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$bmk" \
    -kdfopt "hexsalt:$setid" -kdfopt 'info:keyd-backup v1 bundle MAC key' HKDF | tr -d ':')
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$k" -r < "$1" | cut -d' ' -f1
}
head -c -32 "$T/backup.kbk" > "$T/body"
[[ $(mac_of "$T/body") == $(tail -c 32 "$T/backup.kbk" | od -An -tx1 | tr -d ' \n') ]] ||
  fail "the test's MAC is not the bundle's"
size=$(stat -c %s "$T/body")
off=$(( size - 2 - 3 * 34 - 1 ))
old=$(od -An -tx1 -j "$off" -N 1 "$T/body" | tr -d ' ')
printf "\\x$(printf '%02x' $(( 0x$old ^ 0x01 )))" |
  dd of="$T/body" bs=1 seek="$off" conv=notrunc status=none
cmp -s "$T/body" <(head -c -32 "$T/backup.kbk") && fail "the wrapped key was not changed"
{ cat "$T/body"; printf "$(mac_of "$T/body" | sed 's/../\\x&/g')"; } > "$T/bad.kbk"
"$KB" verify --bundle "$T/bad.kbk" --share-file "$T/w1" --share-file "$T/w3" >/dev/null 2>&1 ||
  fail "the altered bundle's MAC does not verify: the test would not reach the key"
if drill A --bundle "$T/bad.kbk" --share-file "$T/w1" --share-file "$T/w3" \
    --report "$T/drill-bad.json" >"$T/out" 2>"$T/err"; then
  fail "the drill of a bundle with an altered wrapped key passed"
fi
grep -q "^keyd-backup: drill failed, nothing was left on the token: 1 of 3 keys failed, the first key 'sip-tls': unwrapping key 'sip-tls' (ec:p256) failed: " "$T/err" ||
  fail "altered key: $(cat "$T/err")"
grep -q "^FAIL key 'sip-tls': unwrapping key 'sip-tls' (ec:p256) failed" "$T/out" ||
  fail "altered key, the key's line: $(cat "$T/out")"
[[ $(grep -c "^pass " "$T/out") -eq 2 ]] || fail "altered key, the others: $(cat "$T/out")"
[[ $(jq -r '.result + " " + (.keys | map(.label + "=" + .result) | join(","))' "$T/drill-bad.json") == \
  "fail sip-tls-rsa=pass,srtp-kek=pass,sip-tls=fail" ]] || fail "report of the failed drill: $(cat "$T/drill-bad.json")"
same_counts "the failed drill"
pass "drill of an altered wrapped key fails naming 'sip-tls', counts unchanged"

# 4. A share with a wrong word (the fifth, swapped for another list word).
read -ra words < "$T/w2"
[[ ${words[4]} == academic ]] && words[4]=acid || words[4]=academic
echo "${words[*]}" > "$T/w2bad"
if drill A --bundle "$T/backup.kbk" --share-file "$T/w1" --share-file "$T/w2bad" \
    >"$T/out" 2>"$T/err"; then
  fail "the drill with a wrong word passed"
fi
grep -q "^keyd-backup: share 2 ($T/w2bad): .*word 5 .*is probably wrong" "$T/err" ||
  fail "wrong word: $(cat "$T/err")"
! grep -q "^pass " "$T/out" || fail "keys were drilled with a bad share: $(cat "$T/out")"
same_counts "the drill with a wrong word"
pass "drill with a wrong word fails naming share 2, counts unchanged"
