#!/usr/bin/env bash
# srtp.sh: srtp-new and srtp-open against a real SoftHSM2 token: each
# suite's key and salt lengths and the round trip; every byte of a blob
# altered and every truncation rejected; blobs bound to their key name and
# context; the blob as docs/srtp.md describes it (OpenSSL opens it with the
# KEK's value); keydctl's output; the audit record without key material.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/srtp_lib.sh"

TOKEN=srtp
make_token $TOKEN
import_kek srtp-kek-1 31
keygen AES:32 other-kek 32
write_pin
write_config <<CONF
state_dir = $T/state

[key srtp-kek]
uri = $(kek_uri srtp-kek-1)
ops = srtp-new, srtp-open

; the same KEK under another name: its blobs must not open here
[key srtp-alias]
uri = $(kek_uri srtp-kek-1)
ops = srtp-open

[key other]
uri = $(kek_uri other-kek)
ops = srtp-new, srtp-open

[client root]
uid = 0
keys = srtp-kek, srtp-alias, other
ops = srtp-new, srtp-open, status
CONF
start_keyd
kek=$(kek_name srtp-kek-1)
grep -q "key 'srtp-kek': SRTP KEK $kek, 0 earlier versions" "$T/keyd.log" ||
  fail "keyd did not log the KEK version $kek"

"$SRTP_CHECK" lengths srtp-kek || fail "suite lengths and round trip"
"$SRTP_CHECK" tamper srtp-kek || fail "altered and truncated blobs"
"$SRTP_CHECK" bind srtp-kek srtp-alias other || fail "key name and context"

: >"$T/inlines"
for s in "${SUITES[@]}"; do
  ctx="call-$s@sbc.example.org"
  srtp_new srtp-kek "$s" "$ctx"
  expect_opens srtp-kek "$BLOB" "$INLINE" "$ctx"
  # The blob argument also goes without its blob: prefix.
  expect_opens srtp-kek "${BLOB#blob:}" "$INLINE" "$ctx"
  [[ $("$SRTP_CHECK" blob-kek "$BLOB") == "$kek" ]] ||
    fail "$s: the blob header does not name KEK $kek"
  "$SRTP_CHECK" verify "$(cat "$T/srtp-kek-1.hex")" srtp-kek "$ctx" \
    "$BLOB" "$INLINE" >/dev/null || fail "$s: the blob is not as documented"
  # Without a context the key does not come out.
  expect_fail "SRTP blob is altered" srtp_open srtp-kek "$BLOB"
  echo "$INLINE" >>"$T/inlines"
done
pass "keydctl srtp new/open for every suite; blobs as docs/srtp.md says"

expect_fail "unknown SRTP suite 'AES_CM_129'" \
  "$KEYDCTL" srtp new srtp-kek -S AES_CM_129
expect_fail "srtp new needs -S SUITE" "$KEYDCTL" srtp new srtp-kek
expect_fail "the blob is not base64" "$KEYDCTL" srtp open srtp-kek 'blob:%%%'
expect_fail "SRTP blob is altered.*not a keyd SRTP blob" \
  "$KEYDCTL" srtp open srtp-kek "blob:$(head -c 67 /dev/zero | base64 -w0)"
expect_fail "unknown key" "$KEYDCTL" srtp new nokey -S AEAD_AES_128_GCM
# pubkey names no algorithm: the error says why there is no public key.
expect_error "keydctl: pubkey srtp-kek: key 'srtp-kek' is an AES key: it has no public key" \
  "$KEYDCTL" pubkey srtp-kek
# A blob of one KEK presented to a key with another: its version is unknown.
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_80 c
expect_fail "made under KEK $kek, which is not a version of key 'other'" \
  srtp_open other "$BLOB" c
pass "bad input is refused with a message"

# The audit trail names op, key, suite and KEK version, never the key.
grep -q "\"op\":\"srtp-new\",\"key\":\"srtp-kek\",\"mech\":\"AEAD_AES_256_GCM $kek\"" \
  "$T/audit.jsonl" || fail "no srtp-new audit record with suite and KEK"
grep -q "\"op\":\"srtp-open\",\"key\":\"srtp-kek\",\"mech\":\"AES_256_CM_HMAC_SHA1_32 $kek\"" \
  "$T/audit.jsonl" || fail "no srtp-open audit record with suite and KEK"
while read -r line; do
  b64=${line#inline:}
  hex=$(base64 -d <<<"$b64" | od -An -tx1 -v | tr -d ' \n')
  for f in "$T/audit.jsonl" "$T/keyd.log"; do
    if grep -qiF -e "$b64" -e "$hex" -e "${hex:0:32}" "$f"; then
      fail "key material in $f"
    fi
  done
done <"$T/inlines"
pass "the audit trail records op, suite and KEK version, not the key"

out=$("$KEYDCTL" status)
grep -q "^key srtp-kek:.*; srtp $kek [0-9]* of $SRTP_LIMIT blobs" <<<"$out" ||
  fail "status does not show the KEK's blob count: $out"
grep -q "^key srtp-alias:.*srtp kek" <<<"$out" &&
  fail "status counts blobs for an srtp-open-only key: $out"
"$KEYDCTL" status --prometheus | has \
  "^keyd_srtp_kek_blobs{key=\"srtp-kek\",kek=\"$kek\"} [1-9]" ||
  fail "no keyd_srtp_kek_blobs metric"
pass "status shows the KEK version and its blob count"
stop_keyd
