#!/usr/bin/env bash
# srtp_libsrtp.sh: keyd's SRTP keys end to end with libsrtp2. For every
# suite this libsrtp2 supports, a sender is set up from srtp-new's inline
# string and a receiver from srtp-open of the stored blob; the receiver
# must unprotect all of the sender's RTP packets, and a receiver with
# another key must reject every one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/srtp_lib.sh"
SRTP_LIBSRTP=$KEYD_BUILD_DIR/tests/srtp_libsrtp

TOKEN=e2e
make_token $TOKEN
keygen AES:32 srtp-kek 71
write_pin
write_config <<CONF
state_dir = $T/state

[key srtp-kek]
uri = $(kek_uri srtp-kek)
ops = srtp-new, srtp-open

[client root]
uid = 0
keys = srtp-kek
ops = srtp-new, srtp-open
CONF
start_keyd

ran=0
for s in "${SUITES[@]}"; do
  rc=0
  "$SRTP_LIBSRTP" probe "$s" || rc=$?
  if [[ $rc -eq 77 ]]; then
    echo "skip: $s: this libsrtp2 does not support it"
    continue
  fi
  [[ $rc -eq 0 ]] || fail "$s: probing libsrtp2 failed ($rc)"
  srtp_new srtp-kek "$s" "sip:call-$s@example.org"
  sender=$INLINE
  # The blob is what a session controller stores; the media server opens it.
  printf '%s\n' "$BLOB" >"$T/stored-blob"
  receiver=$(srtp_open srtp-kek "$(cat "$T/stored-blob")" "sip:call-$s@example.org") ||
    fail "$s: srtp open of the stored blob failed"
  "$SRTP_LIBSRTP" run "$s" "$sender" "$receiver" ||
    fail "$s: the receiver from srtp-open did not unprotect the sender's packets"
  srtp_new srtp-kek "$s" "sip:another-call@example.org"
  rc=0
  "$SRTP_LIBSRTP" run "$s" "$sender" "$INLINE" || rc=$?
  [[ $rc -eq 3 ]] || fail "$s: a receiver with another key did not reject every packet ($rc)"
  ran=$((ran + 1))
done
# Debian's libsrtp2 has AES-CM built in and GCM through its crypto library:
# fewer than the four AES-CM suites means the test itself is broken.
[[ $ran -ge 4 ]] || fail "only $ran suites ran"
pass "libsrtp2: $ran suites, sender from srtp-new, receiver from srtp-open"
stop_keyd
