#!/usr/bin/env bash
# module_threads.sh: a module that starts a thread in C_Initialize (as
# tpm2-pkcs11 does, with GLib) must not take keyd's signals. keyd loads
# SoftHSM2 through keyd-p11shim.so with P11SHIM_THREAD=1, whose thread
# only waits, with the signal mask of the thread that called C_Initialize.
# SIGHUP (log reopened), SIGUSR2 (keys read again) and SIGTERM (a clean
# stop: status 0, a stop record, a log that verifies) must each be keyd's,
# not that thread's, whose default action would end keyd.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=threads
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen EC:prime256v1 audit 09
write_pin
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[client me]
uid = $(id -u)
keys = p256
ops = sign, status
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
export P11SHIM_THREAD=1
start_keyd
export_pub 01 "$T/p256.pem"
export_pub 09 "$T/audit.pem"
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"

# The module's thread is there, in keyd.
grep -qx p11shim-thread /proc/"$KEYD_PID"/task/*/comm ||
  fail "keyd has no thread named p11shim-thread: the shim did not start one"
pass "the module started its thread inside keyd"

sign_ok() {
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "sign failed $1: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/p256.pem" "$T/msg" "$T/sig" >/dev/null ||
    fail "the signature $1 does not verify"
}
# Signals are sent to the process, as systemd and kill(1) do. EVENT: the
# audit record that shows keyd handled it.
signal_handled() { # SIGNAL EVENT
  local n i
  n=$(grep -c "\"event\":\"$2\"" "$T/audit.jsonl" || true)
  kill -s "$1" "$KEYD_PID"
  for ((i = 0; i < 200; i++)); do
    [[ $(grep -c "\"event\":\"$2\"" "$T/audit.jsonl" || true) -gt $n ]] && break
    kill -0 "$KEYD_PID" 2>/dev/null || break
    sleep 0.05
  done
  if ! kill -0 "$KEYD_PID" 2>/dev/null; then
    local rc=0
    wait "$KEYD_PID" || rc=$?
    KEYD_PID=
    fail "keyd died of SIG$1 (exit status $rc): the module's thread took it"
  fi
  [[ $(grep -c "\"event\":\"$2\"" "$T/audit.jsonl" || true) -gt $n ]] ||
    fail "no $2 record within 10 s of SIG$1"
}

sign_ok "at start"
signal_handled HUP log-reopened
sign_ok "after SIGHUP"
pass "SIGHUP reopened the log; keyd serves"
signal_handled USR2 keys-reload
sign_ok "after SIGUSR2"
pass "SIGUSR2 read the keys again; keyd serves"

kill -TERM "$KEYD_PID"
rc=0; wait "$KEYD_PID" || rc=$?
KEYD_PID=
[[ $rc -eq 0 ]] || fail "keyd exited with status $rc on SIGTERM, not 0"
tail -n 2 "$T/audit.jsonl" | grep -q '"event":"stop"' ||
  fail "no stop record at the end of the audit log: $(tail -n 2 "$T/audit.jsonl")"
"$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl" --pubkey "$T/audit.pem" > "$T/verify" 2>&1 ||
  fail "the audit log does not verify: $(cat "$T/verify")"
pass "SIGTERM: exit 0, a stop record, a log that verifies"
