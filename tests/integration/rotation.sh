#!/usr/bin/env bash
# rotation.sh: two recipes of docs/rotation.md, as written there, on a
# running keyd. An SRTP KEK: a new version with the old one moved to
# `previous`, applied by keydctl reload; blobs made before open, new blobs
# are under the new version (checked with the KEKs' own check values).
# Tightening a client's rights: a key taken out of a client's `keys` is
# refused on its open connection's next request. (The TLS recipe is
# e2e_rotation_nginx and e2e_rotation_kamailio.)
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
source "$KEYD_SOURCE_DIR/tests/integration/srtp_lib.sh"

reload_client_setup

TOKEN=rotate
make_token $TOKEN
import_kek srtp-kek-1 41
import_kek srtp-kek-2 42
keygen EC:prime256v1 sip-tls 01
keygen EC:prime256v1 sip-tls-old 02
write_pin
k1=$(kek_name srtp-kek-1) k2=$(kek_name srtp-kek-2)
# conf CURRENT [PREVIOUS] CLIENT-KEYS
conf() {
  {
    echo "[key srtp-kek]"
    echo "uri = $(kek_uri "$1")"
    echo "ops = srtp-new, srtp-open"
    [[ -z $2 ]] || echo "previous = $(kek_uri "$2")"
    for k in sip-tls sip-tls-old; do
      printf '[key %s]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' "$k" "$TOKEN" "$k"
    done
    echo "[client sbc]"
    echo "uid = 0"
    echo "keys = srtp-kek, $3"
    echo "ops = sign, srtp-new, srtp-open, reload"
  } | write_config
}

conf srtp-kek-1 "" "sip-tls, sip-tls-old"
start_keyd
srtp_new srtp-kek AES_CM_128_HMAC_SHA1_80 call-1
b1=$BLOB i1=$INLINE
[[ $("$SRTP_CHECK" blob-kek "$b1") == "$k1" ]] || fail "the first blob is not under $k1"

# The SRTP KEK recipe: kek-2 current, kek-1 under previous; reload.
conf srtp-kek-2 srtp-kek-1 "sip-tls, sip-tls-old"
"$KEYDCTL" reload > "$T/rl.out" || fail "the KEK rotation was refused"
grep -q "keys ~srtp-kek" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
expect_opens srtp-kek "$b1" "$i1" call-1
srtp_new srtp-kek AEAD_AES_256_GCM call-2
b2=$BLOB i2=$INLINE
[[ $("$SRTP_CHECK" blob-kek "$b2") == "$k2" ]] || fail "a new blob is not under $k2"
"$SRTP_CHECK" verify "$(cat "$T/srtp-kek-2.hex")" srtp-kek call-2 "$b2" "$i2" >/dev/null ||
  fail "the new blob is not wrapped under srtp-kek-2"
# A version left out is refused at the reload, not at the first blob.
conf srtp-kek-2 srtp-kek-2 "sip-tls, sip-tls-old"
expect_fail "keydctl: reload: refused: .*srtp-kek" "$KEYDCTL" reload
expect_opens srtp-kek "$b1" "$i1" call-1
pass "SRTP KEK rotated by reload: earlier blobs open, new blobs use $k2"

# Tightening a client's rights: sip-tls-old leaves the client's keys; its
# open connection is refused it on the next request.
mkfifo "$T/c.in" "$T/c.out"
py "$CLIENT" repl < "$T/c.in" > "$T/c.out" 2> "$T/c.err" &
exec {TO}> "$T/c.in" {FROM}< "$T/c.out"
ask() { echo "$1" >&"$TO"; IFS= read -r -t 20 ANSWER <&"$FROM" || ANSWER="(none: $(cat "$T/c.err"))"; }
ask "sign sip-tls-old"; [[ $ANSWER == ok ]] || fail "before: $ANSWER"
conf srtp-kek-2 srtp-kek-1 "sip-tls"
"$KEYDCTL" reload > "$T/rl.out" || fail "the tightening was refused"
grep -q "clients ~sbc" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
ask "sign sip-tls-old"
[[ $ANSWER == "err -6 client 'sbc' may not use key 'sip-tls-old'"* ]] ||
  fail "after: the open connection got '$ANSWER'"
ask "sign sip-tls"; [[ $ANSWER == ok ]] || fail "sip-tls after: $ANSWER"
grep '"op":"sign","key":"sip-tls-old"' "$T/audit.jsonl" | tail -n 1 | has '"error":-6' ||
  fail "the refusal is not in the audit log"
exec {TO}>&-
pass "a key taken from a client's keys is refused on its open connection's next request"

# A key a reload adds gets the checks a start gives it, the loud warning
# for a key anyone holding the PIN can read included.
keygen EC:prime256v1 weak 03 --extractable
printf '[key weak]\nuri = pkcs11:token=%s;object=weak;type=private\nops = sign\n' "$TOKEN" >> "$T/keyd.conf"
grep -q "KEY 'weak' IS EXTRACTABLE" "$T/keyd.log" && fail "the warning came before the key was added"
"$KEYDCTL" reload > "$T/rl.out" || fail "adding the weak key was refused: $(cat "$T/rl.out")"
grep -q "KEY 'weak' IS EXTRACTABLE WITHOUT CKA_WRAP_WITH_TRUSTED" "$T/keyd.log" ||
  fail "a reload added an extractable key without the warning a start gives"
pass "a reload warns about an extractable key it adds, as a start does"
stop_keyd
