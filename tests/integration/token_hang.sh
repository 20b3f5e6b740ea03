#!/usr/bin/env bash
# token_hang.sh: a token that stops answering (keyd-p11shim.so's hang
# rule) must not stall any client, nor leave anything stuck. A call older
# than token_timeout fails with a timeout error; keyd kills the token
# process caught in the hang and starts a fresh one, so no thread stays
# inside the module. Meanwhile every request that needs the token fails
# within token_timeout, and requests that do not need it (pubkey, status)
# are answered. When the token answers again, a fresh token process
# serves, without keyd restarting. A stop during a hang takes seconds.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=hangtest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen EC:prime256v1 audit 02
write_pin
write_config <<CONF
token_timeout = 1500
workers = 2
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
audit_checkpoint_lines = 3
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[client me]
uid = $(id -u)
keys = p256
ops = sign, status
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
start_keyd
export_pub 01 "$T/p256.pem"
printf 'REGISTER sip:example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() {
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "$1: sign failed: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/p256.pem" "$T/msg" "$T/sig" >/dev/null || fail "$1: bad signature"
}
sign_ok "before the hang"

SERVE=$(serve_pid) || fail "no socket-facing process"
TOK1=$(token_pids) || fail "no token process"
threads_before=$(ls /proc/$SERVE/task | wc -l)

# What a request says while the token hangs: its own timeout, the end of
# the token process it waited on, or (once that process is killed) that a
# fresh one is on its way.
hung_error="^keydctl: sign p256: (timed out: token 'hangtest' has not answered a call for more than 1500 ms; keyd replaces its token process|token error: (token 'hangtest' is (restarting|being restarted|starting)|the token process of 'hangtest' ended during the call))"

# Three requests go into the hung token; each fails with one of those.
shim_ctl "hang C_SignInit"
start=$(date +%s%N)
for i in 1 2 3; do
  ( rc=0; "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig.$i" 2> "$T/err.$i" || rc=$?
    echo $rc > "$T/rc.$i" ) &
  pids[i]=$!
done
wait_for "$P11SHIM_LOG" "C_SignInit hang" 5
for i in 1 2 3; do wait "${pids[i]}"; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
for i in 1 2 3; do
  [[ $(cat "$T/rc.$i") != 0 ]] || fail "request $i signed while the token hangs"
  grep -Eq "$hung_error" "$T/err.$i" ||
    fail "request $i caught in the hang said: $(cat "$T/err.$i")"
done
((ms < 4000)) || fail "the requests caught in the hang took $ms ms (token_timeout 1500)"
wait_for "$T/keyd.log" "token 'hangtest' (primary) has not answered a call for more than 1500 ms: its token process is replaced" 5
wait_for "$T/keyd.log" "token process primary (token 'pkcs11:token=hangtest') ended: it hung" 5
# The process caught in the hang is gone: no thread of keyd's is stuck in
# the module.
for _ in $(seq 1 50); do [[ -d /proc/$TOK1 ]] || break; sleep 0.1; done
[[ ! -d /proc/$TOK1 ]] || fail "the hung token process $TOK1 is still there"
pass "3 requests caught in the hang failed in $ms ms; the hung token process was killed"

# While the token still hangs, every request that needs it fails within
# token_timeout (a fresh token process hangs again, and is replaced again),
# and what does not need the token is answered. The audit log's
# checkpoints, every 3 lines, are signed on the token too: they fail the
# same way instead of holding the log.
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  if "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
    fail "signed while the token hangs"
  fi
  t1=$(( ($(date +%s%N) - t0) / 1000000 ))
  ((t1 < 2500)) || fail "a request took $t1 ms while the token hangs (token_timeout 1500)"
  grep -Eq "$hung_error" "$T/err" ||
    fail "while the token hangs, sign said: $(cat "$T/err")"
done
"$KEYDCTL" pubkey p256 > "$T/pub.out" || fail "pubkey while the token hangs"
"$KEYDCTL" status > "$T/status" || fail "status while the token hangs"
grep -Eq "^token hangtest: .*, primary, (hung|restarting|serving) " "$T/status" || fail "status: $(cat "$T/status")"
grep -Eq "cannot sign an audit checkpoint: .*(has not answered|is restarting|is being restarted|ended during the call)" "$T/keyd.log" ||
  fail "no failed checkpoint in keyd's log while the token hangs"
threads_now=$(ls /proc/$SERVE/task | wc -l)
((threads_now <= threads_before)) || fail "the socket-facing process grew from $threads_before to $threads_now threads"
pass "hung token: requests refused within token_timeout; status and pubkey answered; no thread added"

# The token answers again: a fresh token process serves, keyd itself was
# never restarted, and the log's hash chain runs unbroken through the hang.
shim_ctl ""
wait_for "$T/keyd.log" "token 'hangtest' (primary) serves again" 40
sign_ok "after the hang"
[[ $(serve_pid) == "$SERVE" ]] || fail "the socket-facing process was restarted"
[[ $(token_pids) != "$TOK1" ]] || fail "the token process was not replaced"
"$KEYDCTL" status > "$T/status"
grep -q "^token hangtest: .*, primary, serving (active), " "$T/status" || fail "status after: $(cat "$T/status")"
grep -q '"event":"token-restart".*"detail":"primary restarting: it hung' "$T/audit.jsonl" ||
  fail "no token-restart audit record naming the hang"
for i in 1 2 3 4; do sign_ok "after the hang, $i"; done
export_pub 02 "$T/audit.pem"
st=0
"$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl" --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 || st=$?
[[ $st == 0 || $st == 3 ]] && grep -q "verified" "$T/v.out" ||
  fail "keyd-audit verify after the hang: status $st: $(cat "$T/v.out")"
pass "the token answers: a fresh token process serves, keyd was not restarted"

# SIGTERM while a call hangs: the request fails within token_timeout, keyd
# writes its stop line and exits 0 within seconds; the token process
# caught in the hang is killed.
: > "$P11SHIM_LOG"
shim_ctl "hang C_SignInit"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null &
wait_for "$P11SHIM_LOG" "C_SignInit hang" 5
start=$(date +%s)
kill -TERM "$KEYD_PID"
rc=0
for _ in $(seq 1 150); do kill -0 "$KEYD_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$KEYD_PID" 2>/dev/null && fail "keyd still running 15 s after SIGTERM during a hang"
wait "$KEYD_PID" || rc=$?
KEYD_PID=
((rc == 0)) || fail "keyd exited with $rc after SIGTERM during a hang"
[[ ! -e $T/run/keyd.sock ]] || fail "socket left behind"
grep -q '"event":"stop"' "$T/audit.jsonl" || fail "no stop record"
! pgrep -x keyd-token -P 1 >/dev/null || true
shim_ctl ""
pass "SIGTERM during a hang: keyd exits in $(( $(date +%s) - start )) s with status 0"
