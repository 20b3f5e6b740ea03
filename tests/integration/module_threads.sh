#!/usr/bin/env bash
# module_threads.sh: a module that starts threads (tpm2-pkcs11 starts a GLib
# thread in C_Initialize) must not take keyd's signals. keyd loads SoftHSM2
# through keyd-p11shim.so, whose P11SHIM_THREAD starts a thread that only
# waits, with the signal mask of the thread that made the call: in
# C_Initialize, or at a later C_OpenSession (here the one rsa_ir_init makes
# for the pkcs1_decrypt key, after the token is open). In each case SIGHUP
# (log reopened), SIGUSR2 (keys read again) and SIGTERM (a clean stop:
# status 0, a stop record, a log that verifies) must be keyd's, not that
# thread's, whose default action would end keyd. And a start-up that hangs
# in the module still stops on SIGTERM.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=threads
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
keygen EC:prime256v1 audit 09
write_pin
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = decrypt
pkcs1_decrypt = implicit-rejection
[client me]
uid = $(id -u)
keys = p256, rsa
ops = sign, decrypt, status
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
export_pub 01 "$T/p256.pem"
export_pub 09 "$T/audit.pem"
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"

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
# The session the thread starts at: the last one keyd opens in what
# --check-config also does (token_open, then rsa_ir_init's session), before
# any worker or the sandbox exists; counted through the shim's trace.
shim_ctl "trace C_OpenSession"
"$KEYD" -c "$T/keyd.conf" --check-config > "$T/out" 2>&1 || fail "--check-config: $(cat "$T/out")"
late=$(grep -c "^trace C_OpenSession CKR_OK" "$P11SHIM_LOG")
shim_ctl
: > "$P11SHIM_LOG"
[[ $late -ge 2 ]] || fail "keyd opened $late sessions in its checks; expected the token's and rsa_ir's"

for when in 1 "open:$late"; do
  export P11SHIM_THREAD=$when
  start_keyd
  # The module runs in the token process, and its thread with it.
  tp=$(token_pids) || fail "no token process under keyd"
  grep -qx p11shim-thread /proc/"$tp"/task/*/comm ||
    fail "the token process has no thread named p11shim-thread ($when): the shim did not start one"
  sign_ok "at start ($when)"
  signal_handled HUP log-reopened
  sign_ok "after SIGHUP ($when)"
  signal_handled USR2 keys-reload
  sign_ok "after SIGUSR2 ($when)"
  kill -TERM "$KEYD_PID"
  rc=0; wait "$KEYD_PID" || rc=$?
  KEYD_PID=
  [[ $rc -eq 0 ]] || fail "keyd exited with status $rc on SIGTERM ($when), not 0"
  tail -n 2 "$T/audit.jsonl" | has '"event":"stop"' ||
    fail "no stop record at the end of the audit log ($when): $(tail -n 2 "$T/audit.jsonl")"
  "$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl" --pubkey "$T/audit.pem" > "$T/verify" 2>&1 ||
    fail "the audit log does not verify ($when): $(cat "$T/verify")"
  pass "module thread started at ${when/1/C_Initialize}: SIGHUP, SIGUSR2 and SIGTERM are keyd's"
done
unset P11SHIM_THREAD

# A start-up that hangs in the module (C_Login held by the shim) stops on
# SIGTERM, and says why.
shim_ctl "hang C_Login"
: > "$T/keyd.log"
"$KEYD" -c "$T/keyd.conf" > "$T/keyd.log" 2>&1 &
pid=$!
for ((i = 0; i < 200; i++)); do
  grep -q "C_Login hang" "$P11SHIM_LOG" && break
  sleep 0.05
done
grep -q "C_Login hang" "$P11SHIM_LOG" || fail "keyd's C_Login did not reach the shim's hang"
kill -TERM "$pid"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
  shim_ctl
  wait "$pid" || true
  fail "keyd hung in C_Login did not stop within 5 s of SIGTERM"
fi
rc=0; wait "$pid" || rc=$?
shim_ctl
[[ $rc -eq 1 ]] || fail "keyd stopped during start-up with status $rc, not 1"
grep -q "SIGTERM during start-up: stopping before serving" "$T/keyd.log" ||
  fail "keyd did not say why it stopped: $(cat "$T/keyd.log")"
pass "a start-up hung in C_Login stops on SIGTERM (status 1), saying so"
