#!/usr/bin/env bash
# lifecycle.sh: keyd's run from start to SIGTERM. It stops cleanly (exit
# 0, socket file removed, the audit log's last line the stop event); every
# request line of the audit log carries who, what, the result, the latency
# and the sizes; SIGHUP reopens a rotated audit log; the PIN appears in
# no log, no audit line, and neither keyd's command line nor its
# environment. Where the build tree allows keyd to load the tracing module
# keyd-p11shim.so: sessions are opened once per worker, not per request,
# the user logs in once, and SIGTERM logs out and finalises the module.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=lifetest
# A PIN that cannot turn up in a log by chance (a pid, a latency).
PIN="Pn-7fQx3kZw9"
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
write_pin
write_config <<CONF
audit_sync = request
workers = 2
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = decrypt
[client me]
uid = $(id -u)
keys = p256, rsa
ops = sign, decrypt, status
CONF
SHIMMED=0
if use_shim; then
  SHIMMED=1
  shim_ctl "trace C_OpenSession C_Login C_Logout C_CloseSession C_CloseAllSessions C_Finalize"
else
  echo "note: session and logout checks skipped"
fi
start_keyd
S=$T/run/keyd.sock
first=$(head -1 "$T/audit.jsonl")
[[ $(json_field "$first" event) == start && $(json_field "$first" seq) == 0 ]] ||
  fail "first audit line: $first"

# Some traffic: successes, refusals, protocol errors.
printf 'OPTIONS sip:example.com SIP/2.0\r\n' > "$T/msg"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig"
"$KEYDCTL" sign p256 -a ecdsa-sha384 -i "$T/msg" -o "$T/sig"
"$KEYDCTL" list > /dev/null
"$KEYDCTL" status > /dev/null
"$KEYDCTL" pubkey rsa > "$T/rsa.pem"
head -c 32 /dev/urandom > "$T/pt"
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
  -pkeyopt rsa_oaep_md:sha1 -in "$T/pt" -out "$T/ct"
"$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out"
cmp -s "$T/pt" "$T/out" || fail "decrypt"
"$KEYDCTL" sign rsa -a rsa-pss-sha256 -i "$T/msg" 2>/dev/null && fail "sign with a decrypt key"
"$KEYDCTL" sign nope -a ecdsa-sha256 -i "$T/msg" 2>/dev/null && fail "sign with no key"
"$KD_RAW" "$S" garbage > /dev/null
"$KD_RAW" "$S" pipeline 20 p256 > /dev/null
for _ in $(seq 20); do "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig"; done
"$KD_RAW" "$S" pipeline 200 p256 > /dev/null

# What the first token process did with the module, before SIGHUP's
# reload starts another (checked below).
((SHIMMED)) && cp "$P11SHIM_LOG" "$T/shim.first"

# SIGHUP after an outside rotation: the old file keeps what was written,
# the new one gets the rest. SIGHUP also reloads the (same) configuration:
# a new token process takes over, the first one finalises its module.
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
kill -HUP "$KEYD_PID"
wait_for "$T/audit.jsonl" '"event":"log-reopened"'
wait_for "$T/audit.jsonl" '"event":"reload",.*no change'
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig"
grep -q '"op":"sign","key":"p256"' "$T/audit.jsonl" || fail "no sign line after the reopen"
! grep -q '"event":"log-reopened"' "$T/audit.jsonl.1" || fail "the reopen went to the old file"
((SHIMMED)) && wait_for "$P11SHIM_LOG" '^trace C_Finalize CKR_OK$'
pass "SIGHUP reopens the audit log and reloads"

# Memory and descriptors of the running daemon, for the PIN checks.
cp "/proc/$KEYD_PID/cmdline" "$T/cmdline"
cp "/proc/$KEYD_PID/environ" "$T/environ"
[[ -s $T/cmdline ]] || fail "cannot read keyd's cmdline"

# SIGTERM: exit 0, socket removed, the stop event last.
pid=$KEYD_PID
stop_keyd
[[ ! -e $S ]] || fail "socket file left after SIGTERM"
kill -0 "$pid" 2>/dev/null && fail "keyd still running"
last=$(tail -1 "$T/audit.jsonl")
[[ $(json_field "$last" event) == stop && $(json_field "$last" result) == ok ]] ||
  fail "last audit line: $last"
grep -q "keyd: stopping on signal 15" "$T/keyd.log" || fail "no stop line in keyd's log"
pass "SIGTERM: exit 0, socket removed, stop event last"

# What keyd did with the token, as the module saw it: over 250 requests,
# one login and at most a session per worker plus the one kept logged in,
# and, right after the login, the session of the start-up test of the RSA
# key's OAEP hashes, opened and closed; at SIGTERM a logout, then every
# session closed, then C_Finalize.
if ((SHIMMED)); then
  opens=$(grep -c '^trace C_OpenSession CKR_OK$' "$T/shim.first" || true)
  logins=$(grep -c '^trace C_Login CKR_OK$' "$T/shim.first" || true)
  head -4 "$T/shim.first" | tr '\n' ' ' > "$T/head"
  [[ $(cat "$T/head") == "trace C_OpenSession CKR_OK trace C_Login CKR_OK trace C_OpenSession CKR_OK trace C_CloseSession CKR_OK " ]] ||
    fail "not the kept session, the login, then the OAEP test's session: $(cat "$P11SHIM_LOG")"
  (( opens >= 3 && opens <= 4 )) || fail "$opens sessions opened for 2 workers: $(cat "$P11SHIM_LOG")"
  (( logins == 1 )) || fail "$logins logins: $(cat "$P11SHIM_LOG")"
  # Two token processes in all (the reload's), each ending the same way.
  [[ $(grep -c '^trace C_Login CKR_OK$' "$P11SHIM_LOG") -eq 2 ]] ||
    fail "not one login per token process: $(cat "$P11SHIM_LOG")"
  [[ $(grep -c '^trace C_Finalize CKR_OK$' "$P11SHIM_LOG") -eq 2 ]] ||
    fail "not one C_Finalize per token process: $(cat "$P11SHIM_LOG")"
  tail -3 "$P11SHIM_LOG" | tr '\n' ' ' > "$T/tail"
  [[ $(cat "$T/tail") == "trace C_Logout CKR_OK trace C_CloseAllSessions CKR_OK trace C_Finalize CKR_OK " ]] ||
    fail "keyd's last calls to the module: $(cat "$T/tail")"
  pass "$opens sessions, 1 login, logout and finalize at SIGTERM"
fi

# Every line: seq (consecutive across the rotation), time (UTC, us).
cat "$T/audit.jsonl.1" "$T/audit.jsonl" > "$T/all.jsonl"
seq=0
requests=0
while IFS= read -r line; do
  [[ $(json_field "$line" seq) == "$seq" ]] || fail "seq $seq missing: $line"
  [[ $(json_field "$line" time) =~ ^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{6}Z$ ]] ||
    fail "time: $line"
  [[ -n $(json_field "$line" event) && -n $(json_field "$line" result) ]] ||
    fail "no event or result: $line"
  seq=$((seq + 1))
  [[ $(json_field "$line" event) == request ]] || continue
  requests=$((requests + 1))
  # Who, what, how it went, how long, how big.
  for f in client uid gid pid op result latency_us request_bytes reply_bytes; do
    [[ -n $(json_field "$line" "$f") ]] || fail "request line without $f: $line"
  done
  [[ $(json_field "$line" client) == me && $(json_field "$line" uid) == "$(id -u)" &&
     $(json_field "$line" gid) == "$(id -g)" ]] || fail "who: $line"
  [[ $(json_field "$line" pid) -gt 1 ]] || fail "pid: $line"
  op=$(json_field "$line" op)
  # Operations on a key name the key and the mechanism.
  if [[ $op == sign || $op == decrypt ]]; then
    for f in key mech; do
      [[ -n $(json_field "$line" "$f") ]] || fail "$op line without $f: $line"
    done
  fi
  if [[ $(json_field "$line" result) == ok ]]; then
    [[ -z $(json_field "$line" error) ]] || fail "ok with an error code: $line"
    [[ $(json_field "$line" request_bytes) -gt 0 || $op == list || $op == status ]] ||
      fail "request_bytes: $line"
    [[ $(json_field "$line" reply_bytes) -gt 0 ]] || fail "reply_bytes: $line"
  else
    [[ $(json_field "$line" error) -lt 0 && -n $(json_field "$line" detail) ]] ||
      fail "a failure without error code or detail: $line"
  fi
done < "$T/all.jsonl"
(( requests >= 40 )) || fail "only $requests request lines"
grep -q '"op":"sign","key":"p256","mech":"ecdsa","result":"ok"' "$T/all.jsonl" || fail "no ok sign"
grep -q '"op":"decrypt","key":"rsa","mech":"rsa-oaep-sha1","result":"ok"' "$T/all.jsonl" || fail "no ok decrypt"
grep -q '"op":"sign","key":"rsa","mech":"rsa-pss-sha256","result":"permission denied by policy","error":-6' \
  "$T/all.jsonl" || fail "no denied sign"
grep -q '"op":"invalid","result":"protocol error","error":-4' "$T/all.jsonl" || fail "no protocol error"
pass "$seq audit lines, $requests requests, every field there"

# The PIN: nowhere.
for f in "$T/all.jsonl" "$T/keyd.log" "$T/cmdline" "$T/environ"; do
  ! grep -qaF "$PIN" "$f" || fail "the PIN is in $(basename "$f")"
done
# ...while the same check does find what is there (it can fail).
grep -qaF "$T/keyd.conf" "$T/cmdline" || fail "cmdline check is blind"
grep -qaF "SOFTHSM2_CONF=" "$T/environ" || fail "environ check is blind"
pass "no PIN in the logs, the command line or the environment"

# Start and stop once more: the new run appends, starting at the next seq.
start_keyd
stop_keyd
n=$(grep -c '"event":"start"' "$T/audit.jsonl")
[[ $n -eq 1 ]] || fail "$n start events in the rotated file, want 1"
[[ $(json_field "$(tail -1 "$T/audit.jsonl")" event) == stop ]] || fail "second run's last line"
pass "lifecycle"
