#!/usr/bin/env bash
# srtp_rotate.sh: KEK rotation. A blob made under an earlier KEK version
# opens after rotation while new blobs use the new version; versions are
# found by their check value, so reordering them changes nothing; a blob
# whose version was removed from the config is refused (and opens again
# when the version comes back: nothing was lost); config mistakes about
# versions are refused at start-up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/srtp_lib.sh"

TOKEN=rotate
make_token $TOKEN
import_kek kek-1 41
import_kek kek-2 42
import_kek kek-3 43
k1=$(kek_name kek-1) k2=$(kek_name kek-2) k3=$(kek_name kek-3)
write_pin

# config CURRENT [previous lines...]
config() {
  local cur=$1; shift
  {
    echo "state_dir = $T/state"
    echo
    echo "[key srtp-kek]"
    echo "uri = $(kek_uri "$cur")"
    echo "ops = srtp-new, srtp-open"
    for p in "$@"; do echo "previous = $p"; done
    echo
    echo "[client root]"
    echo "uid = 0"
    echo "keys = srtp-kek"
    echo "ops = srtp-new, srtp-open, status"
  } | write_config
}

config kek-1
start_keyd
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_80 call-1
b1=$BLOB i1=$INLINE
[[ $("$SRTP_CHECK" blob-kek "$b1") == "$k1" ]] || fail "b1 is not under $k1"
stop_keyd

# Rotation: a new current KEK, the old one listed as an earlier version.
config kek-2 "$(kek_uri kek-1)"
start_keyd
grep -q "SRTP KEK $k2, 1 earlier version, " "$T/keyd.log" ||
  fail "keyd did not take $k2 as current"
expect_opens srtp-kek "$b1" "$i1" call-1
srtp_new srtp-kek AEAD_AES_256_GCM call-2
b2=$BLOB i2=$INLINE
[[ $("$SRTP_CHECK" blob-kek "$b2") == "$k2" ]] ||
  fail "a new blob is not under the new KEK $k2"
"$SRTP_CHECK" verify "$(cat "$T/kek-2.hex")" srtp-kek call-2 "$b2" "$i2" \
  >/dev/null || fail "b2 is not wrapped under kek-2"
"$KEYDCTL" status | has "srtp $k2 1 of $SRTP_LIMIT blobs" ||
  fail "status does not count the new KEK afresh"
stop_keyd
pass "a blob of the earlier KEK opens after rotation; new blobs use the new one"

# Two versions back, as a comma list; then the same in another order, on
# separate lines.
config kek-3 "$(kek_uri kek-2), $(kek_uri kek-1)"
start_keyd
expect_opens srtp-kek "$b1" "$i1" call-1
expect_opens srtp-kek "$b2" "$i2" call-2
srtp_new srtp-kek AES_256_CM_HMAC_SHA1_80
b3=$BLOB i3=$INLINE
[[ $("$SRTP_CHECK" blob-kek "$b3") == "$k3" ]] || fail "b3 is not under $k3"
stop_keyd
config kek-3 "$(kek_uri kek-1)" "$(kek_uri kek-2)"
start_keyd
expect_opens srtp-kek "$b1" "$i1" call-1
expect_opens srtp-kek "$b2" "$i2" call-2
expect_opens srtp-kek "$b3" "$i3"
stop_keyd
pass "earlier versions open in any order"

# kek-1 removed: its blob is refused, by name, not tried under another KEK.
config kek-3 "$(kek_uri kek-2)"
start_keyd
expect_fail "made under KEK $k1, which is not a version of key 'srtp-kek'" \
  srtp_open srtp-kek "$b1" call-1
expect_opens srtp-kek "$b2" "$i2" call-2
grep -q "\"op\":\"srtp-open\",\"key\":\"srtp-kek\",\"mech\":\"AES_CM_128_HMAC_SHA1_80 $k1\",\"result\":\"SRTP blob" \
  "$T/audit.jsonl" || fail "the refusal is not audited with the KEK version"
stop_keyd
# Even with kek-1's place in the list taken by another KEK.
keygen AES:32 kek-3-other 44
config kek-3 "$(kek_uri kek-2)" "$(kek_uri kek-3-other)"
start_keyd
expect_fail "made under KEK $k1, which is not a version" \
  srtp_open srtp-kek "$b1" call-1
stop_keyd
config kek-3 "$(kek_uri kek-2)" "$(kek_uri kek-1)"
start_keyd
expect_opens srtp-kek "$b1" "$i1" call-1
stop_keyd
pass "a blob whose KEK version was removed from the config is refused"

# The documented rotation: a new KEK from keyd-backup keygen, named by the
# check value keygen prints.
BACKUP=$KEYD_BUILD_DIR/keyd/keyd-backup
if [[ -x $BACKUP ]]; then
  out=$("$BACKUP" keygen --module "$SOFTHSM_MODULE" --token "pkcs11:token=$TOKEN" \
    --pin-file "$T/pin" --type aes:256 --usage srtp --label kek-4) ||
    fail "keyd-backup keygen: $out"
  k4=kek-$(sed -n 's/^ *check value: *\([0-9a-f]*\)$/\1/p' <<<"$out")
  [[ $k4 =~ ^kek-[0-9a-f]{6}$ ]] || fail "keygen printed no check value: $out"
  config kek-4 "$(kek_uri kek-3)" "$(kek_uri kek-2)" "$(kek_uri kek-1)"
  start_keyd
  grep -q "SRTP KEK $k4, 3 earlier versions" "$T/keyd.log" ||
    fail "keyd does not name the new KEK by keygen's check value $k4"
  srtp_new srtp-kek AEAD_AES_128_GCM call-4
  [[ $("$SRTP_CHECK" blob-kek "$BLOB") == "$k4" ]] || fail "b4 is not under $k4"
  expect_opens srtp-kek "$BLOB" "$INLINE" call-4
  expect_opens srtp-kek "$b1" "$i1" call-1
  stop_keyd
  pass "rotation to a KEK from keyd-backup keygen, named by its check value"
else
  echo "skip: $BACKUP is not built"
fi

# Each counter belongs to its KEK.
for k in "$k1" "$k2" "$k3"; do
  [[ -f $T/state/srtp-$k.count ]] || fail "no counter file for $k"
done

# Mistakes about versions stop keyd at start-up with a message.
config kek-3 "$(kek_uri kek-3)"
expect_fail "lists its own uri under previous" "$KEYD" -c "$T/keyd.conf" --check-config
config kek-3 "pkcs11:token=$TOKEN;id=%43;type=secret-key"
expect_fail "have the same check value $k3: the same KEK is listed twice" \
  "$KEYD" -c "$T/keyd.conf" --check-config
config kek-3 "$(kek_uri kek-2)" "$(kek_uri kek-2)"
expect_fail "is listed twice" "$KEYD" -c "$T/keyd.conf" --check-config
config kek-3 "$(kek_uri no-such-kek)"
expect_fail "previous version .* is not on token" "$KEYD" -c "$T/keyd.conf" --check-config
config kek-3 "not-a-uri"
expect_fail "expected PKCS#11 URIs of earlier KEK versions" \
  "$KEYD" -c "$T/keyd.conf" --check-config
write_config <<CONF
[key sig]
uri = $(kek_uri kek-1)
ops = sign
previous = $(kek_uri kek-2)
CONF
expect_fail "has previous (earlier SRTP KEK versions) but neither srtp-new nor srtp-open" \
  "$KEYD" -c "$T/keyd.conf" --check-config
pass "configuration mistakes about KEK versions are refused"
