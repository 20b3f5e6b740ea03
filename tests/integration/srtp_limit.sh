#!/usr/bin/env bash
# srtp_limit.sh: the per-KEK blob counter in state_dir, with the limit
# lowered to 10 by the test-only srtp_limit_for_tests (then the warning
# comes past 5, and keyd reserves 3 counts at a time). The count persists
# across restarts and a crash, only ever skipping ahead; srtp-new is refused
# at the limit with a message to add a KEK version, and works again after
# rotation; a bad counter file or state_dir, or a second keyd on the same
# state_dir, stop keyd at start-up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/srtp_lib.sh"

TOKEN=limit
make_token $TOKEN
import_kek kek-1 51
import_kek kek-2 52
k1=$(kek_name kek-1) k2=$(kek_name kek-2)
write_pin

config() {
  write_config <<CONF
state_dir = $T/state
srtp_limit_for_tests = 10

[key srtp-kek]
uri = $(kek_uri "$1")
ops = srtp-new, srtp-open
${2:+previous = $(kek_uri "$2")}

[client root]
uid = 0
keys = srtp-kek
ops = srtp-new, srtp-open, status, reload
CONF
}

# reserved KEK: the count durably reserved in the KEK's counter file.
reserved() { sed -n 's/^reserved //p' "$T/state/srtp-$1.count"; }
blobs() {
  "$KEYDCTL" status | sed -n "s/^key srtp-kek:.*; srtp $1 \([0-9]*\) of 10 blobs.*/\1/p"
}

config kek-1
start_keyd
grep -q "srtp_limit_for_tests = 10: a TEST setting" "$T/keyd.log" ||
  fail "keyd did not warn about the test setting"
for i in 1 2 3 4; do
  srtp_new srtp-kek AES_CM_128_HMAC_SHA1_80 "call-$i"
  [[ $(reserved "$k1") -ge $i ]] || fail "blob $i handed out before it was reserved"
done
b1=$BLOB i1=$INLINE
[[ $(blobs "$k1") == 4 ]] || fail "status does not show 4 blobs"
[[ $(reserved "$k1") == 6 ]] || fail "4 blobs in batches of 3 should reserve 6, not $(reserved "$k1")"
printf 'keyd srtp-kek counter 1\nkek %s\nreserved 6\n' "${k1#kek-}" |
  cmp -s - "$T/state/srtp-$k1.count" || fail "the counter file is not as documented"
"$KEYDCTL" status | has WARNING && fail "a warning before the warning mark"
[[ -z $(find "$T/state" -name '*.tmp') ]] || fail "a temporary file was left"
pass "blobs are counted and reserved in state_dir before they are handed out"
# A reload goes on counting where the running configuration was, inside
# its reservation: it skips none of the KEK's allowance.
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload: $(cat "$T/rl.out")"
[[ $(blobs "$k1") == 4 ]] || fail "after a reload the count is $(blobs "$k1"), not 4"
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_80 call-5
[[ $(blobs "$k1") == 5 && $(reserved "$k1") == 6 ]] ||
  fail "after a reload and a blob: count $(blobs "$k1"), reserved $(reserved "$k1"); want 5 and 6"
stop_keyd
pass "a reload skips no count"

start_keyd
[[ $(blobs "$k1") == 6 ]] || fail "after a restart the count is $(blobs "$k1"), not 6 (reserved)"
grep -q "SRTP KEK $k1, 0 earlier versions, 6 of 10 blobs reserved (made, or skipped on restart)" \
  "$T/keyd.log" || fail "the start-up line does not call the reserve reserved: $(grep 'SRTP KEK' "$T/keyd.log")"
grep -q "warning: KEK $k1 has wrapped more than 5 SRTP keys" "$T/keyd.log" ||
  fail "keyd did not warn in its log past the warning mark"
"$KEYDCTL" status | has "; WARNING: KEK $k1 has wrapped more than 5 SRTP keys.*add a new KEK version" ||
  fail "status does not warn past the warning mark"
for i in 7 8 9 10; do srtp_new srtp-kek AEAD_AES_128_GCM "call-$i"; done
expect_fail "usage limit reached: KEK $k1 of key 'srtp-kek' has wrapped 10 SRTP keys.*add a new KEK version" \
  "$KEYDCTL" srtp new srtp-kek -S AEAD_AES_128_GCM
grep -q "error: SRTP KEK $k1 (key 'srtp-kek') made its last blob" "$T/keyd.log" ||
  fail "keyd did not log reaching the limit"
[[ $(reserved "$k1") == 10 ]] || fail "reserved past the limit"
expect_opens srtp-kek "$b1" "$i1" call-4
stop_keyd
pass "the count persists across a restart; srtp-new is refused at the limit"

start_keyd
expect_fail "usage limit reached" "$KEYDCTL" srtp new srtp-kek -S AEAD_AES_128_GCM
stop_keyd
pass "the refusal persists across a restart"

config kek-2 kek-1
start_keyd
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_32 x
[[ $("$SRTP_CHECK" blob-kek "$BLOB") == "$k2" ]] || fail "not under the new KEK"
[[ $(blobs "$k2") == 1 ]] || fail "the new KEK's count is not 1"
expect_opens srtp-kek "$b1" "$i1" call-4
# A crash (no clean stop) keeps the count from going back.
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_32 x
kill -KILL "$KEYD_PID"; wait "$KEYD_PID" 2>/dev/null || true; KEYD_PID=
# The killed keyd left its socket and its "serving" line: empty the log,
# or start_keyd could take them for the new keyd's before it truncates it.
: >"$T/keyd.log"
start_keyd
n=$(blobs "$k2")
[[ $n -ge 2 ]] || fail "after a crash the count went back to $n"
stop_keyd
pass "after rotation the new KEK counts afresh; a crash only skips ahead"

# A second keyd may not count the same KEKs.
start_keyd
sed "s|^socket = .*|socket = $T/run2/keyd.sock|" "$T/keyd.conf" >"$T/keyd2.conf"
chmod 0600 "$T/keyd2.conf"
expect_fail "another keyd uses state_dir $T/state" "$KEYD" -c "$T/keyd2.conf"
stop_keyd

# A damaged counter or an unsafe state_dir stop keyd with a message.
cp "$T/state/srtp-$k2.count" "$T/good"
printf 'keyd srtp-kek counter 1\nkek %s\nreserved -1\n' "${k2#kek-}" \
  >"$T/state/srtp-$k2.count"
expect_fail "is not a keyd SRTP counter file for KEK $k2.*restore the file" \
  "$KEYD" -c "$T/keyd.conf" --check-config
cp "$T/state/srtp-$k1.count" "$T/state/srtp-$k2.count"
expect_fail "is not a keyd SRTP counter file for KEK $k2" "$KEYD" -c "$T/keyd.conf"
cp "$T/good" "$T/state/srtp-$k2.count"
chmod 0770 "$T/state"
expect_fail "state_dir $T/state must be owned by uid 0 (keyd's user) and not writable by group or others" \
  "$KEYD" -c "$T/keyd.conf"
chmod 0700 "$T/state"
start_keyd
stop_keyd
pass "a damaged counter file, an unsafe state_dir or a second keyd are refused"
