#!/usr/bin/env bash
# recovery.sh: the token loses keyd's session or login; keyd reopens, logs
# in again, retries once, and the client never notices. SoftHSM2 cannot be
# made to do that from outside, so keyd loads it through keyd-p11shim.so
# (tests/shim/p11shim.c), which fails the calls its control file names,
# and makes the loss real (closes the session, logs the token out, closes
# every session of the slot) before it answers. A token error that is not
# a lost session is not retried: the client gets it, clearly, and keyd
# keeps serving.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=rectest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
write_pin
write_config <<CONF
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = sign, decrypt
[client me]
uid = $(id -u)
keys = p256, rsa
ops = sign, decrypt, status, reload
CONF
use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
start_keyd
export_pub 01 "$T/p256.pem"
export_pub 02 "$T/rsa.pem"
printf 'BYE sip:alice@example.com SIP/2.0\r\n' > "$T/msg"
head -c 32 /dev/urandom > "$T/pt"
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
  -pkeyopt rsa_oaep_md:sha1 -in "$T/pt" -out "$T/ct"

recoveries() {
  "$KEYDCTL" status > "$T/status" || fail "status"
  sed -n 's/^token [^:]*: logged in, \([0-9]*\) recover\(y\|ies\) .*/\1/p' "$T/status"
}
ctl() { shim_ctl "$@"; }
sign_ok() { # ALG KEY: a signature that verifies
  "$KEYDCTL" sign "$2" -a "$1" -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "sign $2 $1 failed: $(cat "$T/err")"
  verify_sig "$1" "$T/$2.pem" "$T/msg" "$T/sig" >/dev/null || fail "$1 signature by $2"
}

# The shim passes everything through when told nothing.
sign_ok ecdsa-sha256 p256
[[ $(recoveries) == 0 ]] || fail "recoveries before any fault: $(head -2 "$T/status")"
[[ ! -s $T/shim.log ]] || fail "the shim injected without a rule: $(cat "$T/shim.log")"

n=0
inject() { # CODE FUNC KEY ALG: one loss in FUNC; the request still succeeds
  local code=$1 func=$2 key=$3 alg=$4 reopen_before injected_before
  reopen_before=$(grep -c "reopen" "$T/keyd.log" || true)
  injected_before=$(grep -c "^$func $code\$" "$T/shim.log" || true)
  ctl "fail $code 1 $func"
  if [[ $alg == rsa-oaep-sha1 ]]; then
    "$KEYDCTL" decrypt "$key" -a "$alg" -i "$T/ct" -o "$T/out" 2> "$T/err" ||
      fail "decrypt after $code in $func: $(cat "$T/err")"
    cmp -s "$T/pt" "$T/out" || fail "decrypt after $code in $func: wrong plaintext"
  else
    sign_ok "$alg" "$key"
  fi
  [[ $(grep -c "^$func $code\$" "$T/shim.log") -eq $((injected_before + 1)) ]] ||
    fail "the shim did not inject $code into $func once: $(tail -3 "$T/shim.log")"
  [[ $(grep -c "reopen" "$T/keyd.log") -gt $reopen_before ]] ||
    fail "no reopen in keyd's log after $code in $func"
  n=$((n + 1))
  [[ $(recoveries) == "$n" ]] || fail "after $code: $(sed -n 2p "$T/status"), want $n recoveries"
  pass "$code in $func: reopened, retried, succeeded ($n recoveries)"
}

for code in CKR_SESSION_HANDLE_INVALID CKR_SESSION_CLOSED CKR_USER_NOT_LOGGED_IN \
    CKR_DEVICE_REMOVED CKR_TOKEN_NOT_PRESENT; do
  inject "$code" C_SignInit p256 ecdsa-sha256
done
# After the operation began, and on the other key types and ops.
inject CKR_SESSION_HANDLE_INVALID C_Sign p256 ecdsa-sha256
inject CKR_USER_NOT_LOGGED_IN C_Sign rsa rsa-pss-sha256
inject CKR_DEVICE_REMOVED C_SignInit rsa rsa-pkcs1-sha256
inject CKR_USER_NOT_LOGGED_IN C_DecryptInit rsa rsa-oaep-sha1
inject CKR_SESSION_HANDLE_INVALID C_Decrypt rsa rsa-oaep-sha1
grep -q "token 'rectest' lost its session or login; reopening" "$T/keyd.log" ||
  fail "keyd's log does not say what happened"
grep -q "token 'rectest' reopened and logged in again" "$T/keyd.log" ||
  fail "keyd's log does not say it recovered"

# The loss was real: after a logout the token needs a login; keyd did it.
ctl ""
for _ in 1 2 3; do sign_ok ecdsa-sha256 p256; done
[[ $(recoveries) == "$n" ]] || fail "recoveries moved without a fault"
grep -Eq "^token rectest: logged in, $n recover(y|ies) " "$T/status" ||
  fail "status: $(sed -n 2p "$T/status")"

# A device error is not a lost session: no retry, no reopen; the client
# gets a token error naming the code, twice in a row; then keyd serves.
reopens=$(grep -c "reopen" "$T/keyd.log")
ctl "fail CKR_DEVICE_ERROR 2"
for _ in 1 2; do
  expect_error "keydctl: sign p256: token error: the token failed: CKR_DEVICE_ERROR" \
    "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg"
done
sign_ok ecdsa-sha256 p256
[[ $(grep -c "^C_SignInit CKR_DEVICE_ERROR$" "$T/shim.log") -eq 2 ]] ||
  fail "the shim did not inject CKR_DEVICE_ERROR twice"
[[ $(grep -c "reopen" "$T/keyd.log") -eq $reopens ]] || fail "a device error made keyd reopen"
[[ $(recoveries) == "$n" ]] || fail "a device error counted as a recovery"
pass "CKR_DEVICE_ERROR twice: token error, no retry, still serving"

# The same in C_Sign, after the operation began: no operation is left
# active in the worker's session to break the next request.
ctl "fail CKR_DEVICE_ERROR 1 C_Sign"
expect_error "keydctl: sign rsa: token error: the token failed: CKR_DEVICE_ERROR" \
  "$KEYDCTL" sign rsa -a rsa-pss-sha256 -i "$T/msg"
sign_ok rsa-pss-sha256 rsa
sign_ok ecdsa-sha256 p256

# A loss twice in a row: the retry fails too; the client is told, and the
# next request recovers.
ctl "fail CKR_SESSION_HANDLE_INVALID 2"
expect_error "keydctl: sign p256: token error: token failed again after reopening the session: CKR_SESSION_HANDLE_INVALID" \
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg"
sign_ok ecdsa-sha256 p256
pass "a loss twice in a row: told once, then recovered"

# Under load: 200 pipelined signatures while every 50th call loses the
# session: every request succeeds.
ctl "fail-nth CKR_SESSION_HANDLE_INVALID 50" "fail-nth CKR_SESSION_CLOSED 120"
"$KD_RAW" "$T/run/keyd.sock" pipeline 200 p256 || fail "pipeline under faults"
[[ $(grep -c "CKR_SESSION_HANDLE_INVALID\|CKR_SESSION_CLOSED" "$T/shim.log") -ge 2 ]] ||
  fail "faults under load were not injected"
ctl ""
stop_keyd
last=$(tail -1 "$T/audit.jsonl")
[[ $(json_field "$last" event) == stop ]] || fail "last audit line: $last"
pass "pipeline under faults"

# Recovery itself fails (the token is not back yet: the login fails with
# a device error): the client is told the token is unavailable; once the
# token is back, keyd logs in again. With one worker, so that the next
# request surely runs in a session opened after the failed login (with
# several, a worker still holding a closed session would trigger the
# recovery by chance).
sed -i 's/^\[keyd\]$/[keyd]\nworkers = 1/' "$T/keyd.conf"
start_keyd
sign_ok ecdsa-sha256 p256
ctl "fail CKR_DEVICE_REMOVED 1 C_SignInit" "fail CKR_DEVICE_ERROR 1 C_Login"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" > /dev/null 2> "$T/err" &&
  fail "signed although the login failed"
grep -q "^keydctl: sign p256: token error: token unavailable: login to token '$TOKEN' failed: CKR_DEVICE_ERROR" "$T/err" ||
  fail "failed recovery said: $(cat "$T/err")"
grep -q "cannot reopen token $TOKEN: " "$T/keyd.log" || fail "keyd's log does not say the reopen failed"
# The token is fine again: keyd must get back to it within a few
# requests, not stay logged out for good.
for i in 1 2 3; do
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" && break
  ((i < 3)) || fail "keyd did not log in again after a failed reopen: $(cat "$T/err")"
done
sign_ok ecdsa-sha256 p256
sign_ok rsa-pkcs1-sha512 rsa
"$KEYDCTL" status > "$T/status"
grep -q "^token rectest: logged in," "$T/status" || fail "status after: $(sed -n 2p "$T/status")"
pass "failed reopen, then recovered"

# The token refuses the PIN at a re-login: every try brings a real token
# closer to locking the PIN, so keyd does not try again by itself, however
# many requests come; SIGUSR2 lets it try once more.
: > "$P11SHIM_LOG"
ctl "fail CKR_DEVICE_REMOVED 1 C_SignInit" "fail CKR_PIN_INCORRECT 1 C_Login" "trace C_Login"
for i in 1 2 3 4 5; do
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" > /dev/null 2> "$T/err" &&
    fail "signed although the PIN was refused"
done
grep -q "^keydctl: sign p256: token error: token '$TOKEN' refused keyd's PIN; keyd does not log in to it again until SIGUSR2 or a restart" "$T/err" ||
  fail "after a refused PIN: $(cat "$T/err")"
[[ $(grep -c "C_Login" "$P11SHIM_LOG") == 1 ]] ||
  fail "keyd logged in more than once after the PIN was refused: $(cat "$P11SHIM_LOG")"
kill -USR2 "$KEYD_PID"
wait_for "$T/keyd.log" "SIGUSR2: reading the keys" 5
sign_ok ecdsa-sha256 p256
pass "a refused PIN: no more logins until SIGUSR2, then served again"

# A reload logs in afresh in a new token process. If the token refuses the
# PIN there, the running configuration serves on, and no later reload
# offers the PIN again until SIGUSR2: reloads in a loop (logrotate's, or a
# client's) must not use up the token's PIN retries.
: > "$P11SHIM_LOG"
ctl "fail CKR_PIN_INCORRECT 100 C_Login" "trace C_Login"
for i in 1 2 3; do
  "$KEYDCTL" reload > "$T/rl.out" 2>&1 && fail "reload $i applied although the token refuses the PIN"
done
grep -q "at an earlier reload; keyd does not try it again until SIGUSR2 or a restart" "$T/rl.out" ||
  fail "the third reload does not say why it did not log in: $(cat "$T/rl.out")"
[[ $(grep -c "C_Login" "$P11SHIM_LOG") == 1 ]] ||
  fail "three reloads offered the refused PIN $(grep -c "C_Login" "$P11SHIM_LOG") times"
sign_ok ecdsa-sha256 p256
ctl "trace C_Login"
kill -USR2 "$KEYD_PID"
wait_for "$T/keyd.log" "SIGUSR2: reading the keys" 5
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload after SIGUSR2: $(cat "$T/rl.out")"
sign_ok ecdsa-sha256 p256
pass "a PIN refused at a reload is not offered again until SIGUSR2"

# A token process that answers nothing for a while, less than
# token_timeout (stopped here, as an overloaded host or a module holding
# every thread might): each status that gets no answer in time gives up a
# channel to it for good. Once none is left the process is replaced,
# rather than the token staying unusable with nothing to replace it.
tp=$(token_pids)
kill -STOP "$tp"
for i in $(seq 1 12); do
  "$KEYDCTL" status > /dev/null 2>&1 || true
  grep -q "did not answer status on any of its channels: its token process is replaced" "$T/keyd.log" && break
done
kill -CONT "$tp" 2>/dev/null || true
grep -q "did not answer status on any of its channels: its token process is replaced" "$T/keyd.log" ||
  fail "status took every channel of a stalled token process and nothing replaced it: $(tail -3 "$T/keyd.log")"
for i in $(seq 1 50); do
  "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o /dev/null 2>/dev/null && break
  sleep 0.2
done
sign_ok ecdsa-sha256 p256
pass "a token process that answers no status on any channel is replaced"

stop_keyd
pass "recovery"
