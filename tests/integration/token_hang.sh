#!/usr/bin/env bash
# token_hang.sh: a token that stops answering (keyd-p11shim.so's hang
# rule) must not stall every client. The requests already inside the hung
# call wait for it; once a call is older than token_timeout, keyd starts
# spare workers and every other request that needs the token fails at
# once with a timeout error, while requests that do not need it (list,
# pubkey, status) are answered. When the token answers, the waiting
# requests complete and keyd serves again. A stop during a hang does not
# wait forever.
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

# Three requests go into the hung token: two occupy both workers, the
# third waits for a worker. (token_timeout is 1500 ms, not less: the second
# request must reach the token before keyd calls it hung, which took more
# than 500 ms in a sanitizer build on a loaded machine.)
shim_ctl "hang C_SignInit"
for i in 1 2 3; do
  ( rc=0; "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig.$i" 2> "$T/err.$i" || rc=$?
    echo $rc > "$T/rc.$i" ) &
  pids[i]=$!
done
wait_for "$P11SHIM_LOG" "C_SignInit hang" 5
wait_for "$T/keyd.log" "token 'hangtest' has not answered a call for 1500 ms: requests fail with a timeout until it answers" 5
wait_for "$T/keyd.log" "workers wait on a token call; started a spare worker" 5

# Every request that needs the token now fails fast with a timeout. The
# audit log's checkpoints, every 3 lines, are signed on the token too:
# they fail the same way instead of holding the log.
start=$(date +%s%N)
for i in 1 2 3 4 5; do
  if "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
    fail "signed while the token hangs"
  fi
  grep -q "^keydctl: sign p256: timed out: token 'hangtest' has not answered a call for more than 1500 ms$" "$T/err" ||
    fail "while the token hangs, sign said: $(cat "$T/err")"
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
((ms < 5000)) || fail "5 refusals took $ms ms"
# What does not need the token is served.
"$KEYDCTL" pubkey p256 > "$T/pub.out" || fail "pubkey while the token hangs"
"$KEYDCTL" status > "$T/status" || fail "status while the token hangs"
grep -q "^token hangtest: .*, primary, hung (active), " "$T/status" || fail "status: $(cat "$T/status")"
# The third request, queued behind the two hung ones, was answered by a
# spare worker: with the timeout error.
for _ in $(seq 1 50); do [[ -s $T/rc.3 ]] && break; sleep 0.1; done
hung=0
for i in 1 2 3; do
  [[ -s $T/rc.$i ]] || { hung=$((hung + 1)); continue; }
  [[ $(cat "$T/rc.$i") != 0 ]] && grep -q "timed out" "$T/err.$i" ||
    fail "queued request $i: rc $(cat "$T/rc.$i"): $(cat "$T/err.$i")"
done
((hung == 2)) || fail "$hung requests wait in the hung token, not 2"
# (The signer may itself be caught in the hang: then its later tries say
# an earlier signature still waits.)
grep -Eq "cannot sign an audit checkpoint: .*(has not answered|an earlier signature still waits on the token)" "$T/keyd.log" ||
  fail "no failed checkpoint in keyd's log while the token hangs"
pass "hung token: 5 requests refused with a timeout in $ms ms; status, pubkey and the queued request answered"

# The token answers again: the two waiting requests complete with good
# signatures and keyd signs again.
shim_ctl ""
for i in 1 2 3; do wait "${pids[i]}"; done
n_ok=0
for i in 1 2 3; do
  if [[ $(cat "$T/rc.$i") == 0 ]]; then
    verify_sig ecdsa-sha256 "$T/p256.pem" "$T/msg" "$T/sig.$i" >/dev/null ||
      fail "request $i caught in the hang: bad signature"
    n_ok=$((n_ok + 1))
  fi
done
((n_ok == 2)) || fail "$n_ok of the requests caught in the hang succeeded, not 2"
wait_for "$T/keyd.log" "token 'hangtest' answers again" 5
sign_ok "after the hang"
"$KEYDCTL" status > "$T/status"
grep -q "^token hangtest: .*, primary, serving (active), " "$T/status" || fail "status after: $(cat "$T/status")"
# Checkpoints are signed again, and the log up to the last one verifies:
# the hash chain runs unbroken through the hang.
for i in 1 2 3 4; do sign_ok "after the hang, $i"; done
export_pub 02 "$T/audit.pem"
st=0
"$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl" --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 || st=$?
[[ $st == 0 || $st == 3 ]] && grep -q "verified" "$T/v.out" ||
  fail "keyd-audit verify after the hang: status $st: $(cat "$T/v.out")"
pass "the token answers: the waiting requests complete, keyd signs again"

# SIGTERM while a call hangs: keyd leaves the stuck worker behind, writes
# its stop line, and exits (status 1) within seconds.
: > "$P11SHIM_LOG"
shim_ctl "hang C_SignInit"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null &
wait_for "$P11SHIM_LOG" "C_SignInit hang" 5
start=$(date +%s)
kill -TERM "$KEYD_PID"
rc=0
for _ in $(seq 1 100); do kill -0 "$KEYD_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$KEYD_PID" 2>/dev/null && fail "keyd still running 10 s after SIGTERM during a hang"
wait "$KEYD_PID" || rc=$?
KEYD_PID=
((rc == 1)) || fail "keyd exited with $rc after SIGTERM during a hang"
grep -q "1 workers did not stop (a token call hangs); exiting without closing the token" "$T/keyd.log" ||
  fail "keyd's log: $(tail -5 "$T/keyd.log")"
[[ ! -e $T/run/keyd.sock ]] || fail "socket left behind"
tail -1 "$T/audit.jsonl" | grep -q '"event":"stop"' || fail "last audit line: $(tail -1 "$T/audit.jsonl")"
shim_ctl ""
pass "SIGTERM during a hang: keyd exits in $(( $(date +%s) - start )) s with status 1"
