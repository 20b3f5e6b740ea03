#!/usr/bin/env bash
# failover.sh: failover_token. Token A holds keys made by keyd-backup
# keygen; token B holds the same keys, restored from A's backup by
# keyd-backup restore, as an operator would make a failover token. keyd
# loads SoftHSM2 through the fault-injecting keyd-p11shim.so, whose rules
# with token=A fail or hang calls on A only. Checked:
#   - while A is gone, requests are served by B, and the signatures verify
#     with A's public key; SRTP blobs made on A open on B and back;
#   - when A is back, keyd serves from A again;
#   - keyd starts if either token can serve every key, not if neither can;
#   - a hung A (a call older than token_timeout) sends requests to B;
#   - a failover token with other keys is never used: no signature from a
#     key the clients do not know.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
M=$SOFTHSM_MODULE
SHARES=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$SHARES"; (exit $rc); cleanup' EXIT

make_token A
make_token B
make_token C
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
kb() { "$KB" "$@" >>"$T/kb.out" 2>"$T/err" || { cat "$T/err" >&2; fail "keyd-backup $1"; }; }

# A's keys, backed up and restored onto B. C gets keys of its own under the
# same labels: not a copy of A.
kb keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --type ec:p256 --label sip-tls --id 01 --usage sign
kb keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --type aes:256 --label srtp-kek --id 03 --usage srtp
kb create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key 'pkcs11:object=sip-tls;type=private' \
  --key 'pkcs11:object=srtp-kek' --threshold 2 --shares 2 \
  --iteration-exponent 0 --bundle "$T/backup.kbk" --shares-dir "$SHARES"
mapfile -t sheets < <(ls "$SHARES"/share-*.txt)
kb restore --module "$M" --token pkcs11:token=B --pin-file "$T/pin" \
  --bundle "$T/backup.kbk" --share-file "${sheets[0]}" --share-file "${sheets[1]}"
kb keygen --module "$M" --token pkcs11:token=C --pin-file "$T/pin" \
  --type ec:p256 --label sip-tls --id 01 --usage sign --no-backup
kb keygen --module "$M" --token pkcs11:token=C --pin-file "$T/pin" \
  --type aes:256 --label srtp-kek --id 03 --usage srtp --no-backup
TOKEN=A
export_pub 01 "$T/ec-A.pem"
pass "keys made on A, restored onto B from its backup; other keys on C"

config() { # FAILOVER [extra [keyd] lines]
  local fo=$1; shift
  write_config <<CONF
failover_token = pkcs11:token=$fo
token_timeout = 500
$(printf '%s\n' "$@")
[key sip-tls]
uri = pkcs11:token=A;object=sip-tls;type=private
ops = sign
[key srtp-kek]
uri = pkcs11:token=A;object=srtp-kek;type=secret-key
ops = srtp-new, srtp-open
[client me]
uid = $(id -u)
keys = sip-tls, srtp-kek
ops = sign, srtp-new, srtp-open, status
CONF
  use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
}
config B "state_dir = $T/state"
mkdir -p "$T/state"

printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() { # WHAT: a signature that verifies with A's public key
  "$KEYDCTL" sign sip-tls -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "$1: sign failed: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/ec-A.pem" "$T/msg" "$T/sig" >/dev/null ||
    fail "$1: the signature does not verify with A's public key"
}
srtp_blob() { # prints the blob of a fresh srtp new
  "$KEYDCTL" srtp new srtp-kek -S AES_CM_128_HMAC_SHA1_80 -C call-1 > "$T/srtp" 2> "$T/err" ||
    fail "srtp new: $(cat "$T/err")"
  sed -n 's/^blob://p' "$T/srtp"
}
srtp_opens() { # BLOB WHAT
  "$KEYDCTL" srtp open srtp-kek "$1" -C call-1 > "$T/open" 2> "$T/err" ||
    fail "$2: srtp open failed: $(cat "$T/err")"
}
token_line() { # LABEL: its line of keydctl status
  "$KEYDCTL" status > "$T/status" || fail "status"
  grep "^token $1: " "$T/status" || true
}
active_is() { # LABEL: that token is the active one
  [[ $(token_line "$1") == *", serving (active), "* ]]
}
back_to_a() { # WHAT FAILURE: signs until A is active again (keyd tries A once a second)
  local i
  for i in $(seq 1 30); do
    sign_ok "$1, request $i"
    active_is A && return 0
    ((i < 30)) || fail "$2: $(cat "$T/status")"
    sleep 0.2
  done
}

start_keyd
active_is A || fail "A is not active at start: $(cat "$T/status")"
[[ $(token_line B) == *"failover, standby, 2 keys in session copies"* ]] ||
  fail "B at start: $(cat "$T/status")"
grep -q "failover token 'B' holds every key" "$T/keyd.log" || fail "no start line for B"
sign_ok "A serving"
blob_a=$(srtp_blob)
pass "A serves, B is on standby with the same keys"

# A is pulled out: its slot shows no token and every call on it fails.
shim_ctl "fail-for CKR_TOKEN_NOT_PRESENT 4000 C_GetTokenInfo token=A" \
  "fail-for CKR_DEVICE_REMOVED 4000 C_SignInit C_EncryptInit C_DecryptInit C_OpenSession C_Login token=A"
sign_ok "A removed"
active_is B || fail "B is not active while A is gone: $(cat "$T/status")"
grep -q "primary token 'A' is failing; serving from the failover token 'B'" "$T/keyd.log" ||
  fail "keyd's log does not say it failed over"
srtp_opens "$blob_a" "a blob made on A, opened on B"
blob_b=$(srtp_blob)
for i in $(seq 1 20); do sign_ok "A removed, request $i"; done
grep -q "token=A" "$T/shim.log" 2>/dev/null || grep -q "C_GetTokenInfo CKR_TOKEN_NOT_PRESENT" "$T/shim.log" ||
  fail "the shim never failed a call on A: $(cat "$T/shim.log")"
pass "A removed: B signs with the same key and opens A's SRTP blobs"

# A comes back: within a few probes (one a second) keyd serves from A.
sleep 4.2
back_to_a "A back" "keyd did not return to A"
grep -q "primary token 'A' serves again" "$T/keyd.log" || fail "keyd's log does not say A is back"
srtp_opens "$blob_b" "a blob made on B, opened on A"
pass "A back: keyd serves from A again"

# A hangs: the first request waits in the token; after token_timeout
# (500 ms) keyd kills A's token process and the request, and the others,
# go to B; a fresh token process serves A again once A answers.
shim_ctl "hang C_SignInit token=A"
( rc=0; "$KEYDCTL" sign sip-tls -a ecdsa-sha256 -i "$T/msg" -o "$T/sig.hung" 2> "$T/err.hung" || rc=$?
  echo $rc > "$T/rc.hung" ) &
hung_pid=$!
wait_for "$P11SHIM_LOG" "C_SignInit hang" 5
sleep 0.8
start=$(date +%s%N)
for i in 1 2 3 4 5; do sign_ok "A hung, request $i"; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
((ms < 5000)) || fail "5 signatures took $ms ms while A hung"
[[ $(token_line A) == *", hung, "* || $(token_line A) == *", restarting, "* ]] ||
  fail "status while A hangs: $(cat "$T/status")"
wait_for "$T/keyd.log" "token 'A' (primary) has not answered a call for more than 500 ms: its token process is replaced" 2
wait_for "$T/keyd.log" "token process primary (token 'pkcs11:token=A') ended: it hung" 2
shim_ctl ""
wait "$hung_pid"
[[ $(cat "$T/rc.hung") == 0 ]] || fail "the request caught in the hang failed: $(cat "$T/err.hung")"
verify_sig ecdsa-sha256 "$T/ec-A.pem" "$T/msg" "$T/sig.hung" >/dev/null ||
  fail "the request caught in the hang: bad signature"
wait_for "$T/keyd.log" "token 'A' (primary) serves again" 5
back_to_a "A answers again" "keyd did not return to A after the hang"
pass "A hung: requests served by B in $ms ms for 5; A serves again once it answers"
stop_keyd

# keyd starts on B when A is not there, and goes to A when A comes.
shim_ctl "fail-for CKR_TOKEN_NOT_PRESENT 60000 C_GetTokenInfo token=A"
start_keyd
grep -q "primary token: no token matches pkcs11:token=A .*; serving from the failover token 'B'" "$T/keyd.log" ||
  fail "start without A: $(cat "$T/keyd.log")"
sign_ok "started on B"
active_is B || fail "B not active after a start without A: $(cat "$T/status")"
shim_ctl ""
back_to_a "A arrives" "keyd did not go to A when it arrived"
pass "no A at start: keyd starts on B, then serves from A once A is there"
stop_keyd

# Neither token: keyd does not start, and says why for both.
shim_ctl "fail-for CKR_TOKEN_NOT_PRESENT 60000 C_GetTokenInfo token=A" \
  "fail-for CKR_TOKEN_NOT_PRESENT 60000 C_GetTokenInfo token=B"
expect_fail "no token matches pkcs11:token=A .*; and the failover token cannot serve either: no token matches pkcs11:token=B" \
  "$KEYD" -c "$T/keyd.conf"
pass "neither token: keyd refuses to start and names both"

# The same token under two URIs (label, and serial) is no failover.
serial_a=$(pkcs11-tool --module "$SOFTHSM_MODULE" -L 2>/dev/null |
  awk '/token label/ { l = $NF } /serial num/ && l == "A" && !n++ { print $NF }')
[[ -n $serial_a ]] || fail "no serial number for token A from pkcs11-tool -L"
shim_ctl ""
sed -i "s/^failover_token = .*/failover_token = pkcs11:serial=$serial_a/" "$T/keyd.conf"
expect_fail "failover_token pkcs11:serial=$serial_a names the same token as token pkcs11:token=A" \
  "$KEYD" -c "$T/keyd.conf"
pass "the same token named twice is refused"

# A failover token with other keys: keyd starts on A, says B is unusable,
# and never signs with C's key.
config C "state_dir = $T/state"
shim_ctl ""
start_keyd
grep -q "failover token: key 'sip-tls' on token 'C' has another public key than the one keyd serves" "$T/keyd.log" ||
  fail "no refusal of C's keys: $(cat "$T/keyd.log")"
sign_ok "A with a wrong failover token"
shim_ctl "fail-for CKR_TOKEN_NOT_PRESENT 60000 C_GetTokenInfo token=A" \
  "fail-for CKR_DEVICE_REMOVED 60000 C_SignInit C_OpenSession C_Login token=A"
if "$KEYDCTL" sign sip-tls -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
  fail "signed although A is gone and C holds other keys"
fi
grep -q "token error" "$T/err" || fail "with A gone and C wrong: $(cat "$T/err")"
pass "a failover token with other keys is never used"
