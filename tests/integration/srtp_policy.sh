#!/usr/bin/env bash
# srtp_policy.sh: srtp-new and srtp-open are separate policy ops. An SBC
# (root here) may make keys but not open blobs; a media server (uid
# nobody) may open blobs but not make keys; a key for srtp-open only makes
# none. Each refusal is checked by its message and in the audit trail.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/srtp_lib.sh"

nobody=65534
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (to run a second client as uid $nobody)"
  exit 77
fi
# nobody runs its own copy of keydctl, reachable through $T (0755).
install -m 0755 "$KEYDCTL" "$T/keydctl"
as_nobody() {
  setpriv --reuid=$nobody --regid=$nobody --clear-groups "$T/keydctl" "$@"
}

TOKEN=policy
make_token $TOKEN
import_kek kek-1 61
write_pin
write_config <<CONF
socket_group = $nobody
state_dir = $T/state

[key srtp-kek]
uri = $(kek_uri kek-1)
ops = srtp-new, srtp-open

[key open-only]
uri = $(kek_uri kek-1)
ops = srtp-open

[client sbc]
uid = 0
keys = srtp-kek, open-only
ops = srtp-new, status

[client media]
uid = $nobody
keys = srtp-kek
ops = srtp-open
CONF
start_keyd

srtp_new srtp-kek AEAD_AES_256_GCM call-1
# The media server opens what the SBC made: the same key.
got=$(as_nobody srtp open srtp-kek "$BLOB" -C call-1) ||
  fail "the media client cannot srtp-open"
[[ $got == "$INLINE" ]] || fail "the media client got another key"
expect_fail "permission denied by policy: client 'media' may not srtp-new" \
  as_nobody srtp new srtp-kek -S AEAD_AES_256_GCM
expect_fail "permission denied by policy: client 'sbc' may not srtp-open" \
  "$KEYDCTL" srtp open srtp-kek "$BLOB" -C call-1
expect_fail "permission denied by policy: key 'open-only' is not for srtp-new" \
  "$KEYDCTL" srtp new open-only -S AES_CM_128_HMAC_SHA1_80
expect_fail "permission denied by policy: client 'media' may not use key 'open-only'" \
  as_nobody srtp open open-only "$BLOB" -C call-1
grep -q '"client":"media",.*"op":"srtp-new","key":"srtp-kek",.*"error":-6' \
  "$T/audit.jsonl" || fail "the media client's srtp-new refusal is not audited"
grep -q '"client":"sbc",.*"op":"srtp-open","key":"srtp-kek",.*"error":-6' \
  "$T/audit.jsonl" || fail "the sbc client's srtp-open refusal is not audited"
pass "srtp-new and srtp-open are granted and refused separately"
stop_keyd
