#!/usr/bin/env bash
# token_crash.sh: a module that crashes (keyd-p11shim.so's crash rule:
# SIGSEGV inside C_SignInit) takes down its token process only. The
# request caught in the crash fails cleanly, or is served by the failover
# token; keyd starts a fresh token process, with back-off while it keeps
# crashing, and audits each restart with its cause. The socket-facing
# process and the clients' connections stay up throughout.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

make_token A
make_token B
# The same EC key on both tokens, imported from one PEM key.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ec.pem" 2>/dev/null
openssl pkey -in "$T/ec.pem" -outform DER -out "$T/ec.der"
openssl pkey -in "$T/ec.pem" -pubout -out "$T/pub.pem"
openssl pkey -in "$T/ec.pem" -pubout -outform DER -out "$T/pub.der"
for tok in A B; do
  TOKEN=$tok p11 --write-object "$T/ec.der" --type privkey --label ec --id 01 --usage-sign >/dev/null
  TOKEN=$tok p11 --write-object "$T/pub.der" --type pubkey --label ec --id 01 >/dev/null
done
write_pin
TOKEN=A
config() { # [keyd] lines
  write_config <<CONF
$(printf '%s\n' "$@")
[key ec]
uri = pkcs11:token=A;object=ec;type=private
ops = sign
[client me]
uid = $(id -u)
keys = ec
ops = sign, status
CONF
  use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
}
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() {
  "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "$1: sign failed: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/pub.pem" "$T/msg" "$T/sig" >/dev/null || fail "$1: bad signature"
}
# An idle client connection, held open by a process of its own; it must
# still be open (no EOF) after the crash.
hold_connection() {
  python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
open(sys.argv[2], "w").write("connected\n")
s.settimeout(30)
try:
    data = s.recv(1)
    open(sys.argv[2], "a").write("closed\n" if data == b"" else "data\n")
except socket.timeout:
    pass
' "$T/run/keyd.sock" "$T/conn" &
  HOLD_PID=$!
  wait_for "$T/conn" connected 5
}

# 1. One token. The crash fails its request at once; the next requests are
#    served by a fresh token process once it is up.
config "token_timeout = 2000"
start_keyd
sign_ok "before the crash"
SERVE=$(serve_pid) || fail "no socket-facing process"
TOK1=$(token_pids) || fail "no token process"
hold_connection
shim_ctl "crash C_SignInit"
t0=$(date +%s%N)
if "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
  fail "signed although the module crashed"
fi
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "^keydctl: sign ec: token error: the token process of 'A' ended during the call (it crashed or exited); keyd starts a fresh one$" "$T/err" ||
  fail "the request caught in the crash said: $(cat "$T/err")"
((ms < 2000)) || fail "the request caught in the crash took $ms ms"
wait_for "$P11SHIM_LOG" "C_SignInit crash" 5
shim_ctl ""
wait_for "$T/keyd.log" "token process primary (token 'pkcs11:token=A') ended: it crashed (SIGSEGV, signal 11, inside the module)" 5
wait_for "$T/keyd.log" "token 'A' (primary) serves again" 10
sign_ok "after the crash"
[[ $(serve_pid) == "$SERVE" ]] || fail "the socket-facing process was restarted"
[[ $(token_pids) != "$TOK1" ]] || fail "the token process is the same"
! grep -q closed "$T/conn" || fail "the client's connection was closed"
kill -0 "$HOLD_PID" || fail "the client holding a connection is gone"
grep -q '"event":"token-restart".*"detail":"primary restarting: it crashed (SIGSEGV' "$T/audit.jsonl" ||
  fail "no token-restart audit record naming the crash"
grep -q '"event":"token-ready"' "$T/audit.jsonl" || fail "no token-ready audit record"
pass "crash: the request failed in $ms ms, a fresh token process serves; keyd-serve and the client's connection stayed up"

# 2. A module that crashes again and again: restarts back off.
ready_before=$(grep -c "token 'A' (primary) serves again" "$T/keyd.log")
shim_ctl "crash C_SignInit"
for i in $(seq 1 8); do "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null || true; sleep 0.2; done
shim_ctl ""
grep -q "token process primary: restarting in 0 ms" "$T/keyd.log" || fail "no immediate first restart"
grep -q "token process primary: restarting in 250 ms" "$T/keyd.log" || fail "no back-off to 250 ms"
grep -q "token process primary: restarting in 500 ms" "$T/keyd.log" || fail "no back-off to 500 ms"
for _ in $(seq 1 200); do
  (( $(grep -c "token 'A' (primary) serves again" "$T/keyd.log") > ready_before + 1 )) && break
  sleep 0.1
done
# The last restart may still be on its way: signing comes back.
for _ in $(seq 1 50); do
  "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null && break
  sleep 0.2
done
for i in 1 2 3; do sign_ok "after the crashes, $i"; done
[[ $(serve_pid) == "$SERVE" ]] || fail "the socket-facing process was restarted"
kill "$HOLD_PID" 2>/dev/null || true
stop_keyd
pass "a module crashing again and again: restarts back off (0, 250, 500 ms, ...); keyd serves once it stops"

# 3. With a failover token: the request caught in A's crash is served by B,
#    and so is everything while A's token process restarts; then A serves
#    again.
config "token_timeout = 2000" "failover_token = pkcs11:token=B"
start_keyd
sign_ok "A and B"
shim_ctl "crash C_SignInit token=A"
sign_ok "the request caught in A's crash"
wait_for "$P11SHIM_LOG" "C_SignInit crash" 5
for i in 1 2 3 4 5; do sign_ok "while A restarts, $i"; done
grep -q "primary token 'A' is failing; serving from the failover token 'B'" "$T/keyd.log" ||
  fail "keyd's log does not say B serves"
shim_ctl ""
for i in $(seq 1 40); do
  sign_ok "A back, $i"
  grep -q "primary token 'A' serves again" "$T/keyd.log" && break
  ((i < 40)) || fail "A does not serve again: $(tail -5 "$T/keyd.log")"
  sleep 0.25
done
stop_keyd
pass "crash with a failover token: B served the request caught in the crash and the rest; A serves again"
