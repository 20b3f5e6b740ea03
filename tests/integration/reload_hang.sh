#!/usr/bin/env bash
# reload_hang.sh: a reload while the token hangs, or while its token
# process restarts, never blocks keyd's signal handling, and is applied or
# refused with a clear reason within token_timeout; the running
# configuration serves meanwhile. A token process restarted after a
# reload runs with the bytes that reload applied, not with what the file
# says later.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=rlhang
make_token $TOKEN
keygen EC:prime256v1 k1 01
keygen EC:prime256v1 k2 02
keygen EC:prime256v1 k3 03
write_pin
export_pub 01 "$T/k1.pem"
export_pub 02 "$T/k2.pem"
# conf KEY...: those keys, all the client's.
conf() {
  {
    echo "token_timeout = 1500"
    for k in "$@"; do
      printf '[key %s]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' \
        "$k" "$TOKEN" "$k"
    done
    echo "[client me]"
    echo "uid = $(id -u)"
    echo "keys = $(IFS=,; echo "$*")"
    echo "ops = sign, status, reload"
  } | write_config
  if [[ -z ${SHIMMED:-} ]]; then
    use_shim || { echo "SKIP: cannot use the shim"; exit 77; }
    SHIMMED=1
  else
    # The same module: it cannot change on reload.
    sed -i "s|^module = .*|module = $SHIM|" "$T/keyd.conf"
  fi
}
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() {
  "$KEYDCTL" sign "$1" -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "$2: sign $1 failed: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/$1.pem" "$T/msg" "$T/sig" >/dev/null ||
    fail "$2: bad signature by $1"
}

conf k1
start_keyd
sign_ok k1 "at start"

# The token hangs in every C_Login: a new token process cannot open it.
# The reload is refused after token_timeout, saying so; meanwhile keyd
# handles a signal (SIGHUP: the log reopened, a second reload refused at
# once) and the running configuration signs.
conf k1 k2
shim_ctl "hang C_Login"
start=$(date +%s%N)
( rc=0; "$KEYDCTL" reload > "$T/rl.out" 2> "$T/rl.err" || rc=$?; echo $rc > "$T/rl.rc" ) &
rl_pid=$!
wait_for "$P11SHIM_LOG" "C_Login hang" 5
kill -HUP "$KEYD_PID"
wait_for "$T/audit.jsonl" '"event":"log-reopened"' 2
wait_for "$T/audit.jsonl" '"event":"reload-refused".*another reload is under way' 2
hup_ms=$(( ($(date +%s%N) - start) / 1000000 ))
sign_ok k1 "during the hung reload"
wait "$rl_pid"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $(cat "$T/rl.rc") == 1 ]] || fail "a reload with a hung token exited $(cat "$T/rl.rc")"
grep -q "^keydctl: reload: refused: the new configuration's keys were not resolved within token_timeout (1500 ms)" \
  "$T/rl.err" || fail "the hung reload said: $(cat "$T/rl.err")"
(( hup_ms < 1500 )) || fail "SIGHUP was handled after ${hup_ms} ms, behind the hung reload"
(( ms >= 1400 && ms < 4000 )) || fail "the hung reload was refused after ${ms} ms"
shim_ctl ""
"$KEYDCTL" sign k2 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null &&
  fail "k2 signs after a refused reload"
[[ $(token_pids | wc -l) -eq 1 ]] || fail "the hung reload's token process is left: $(token_pids)"
pass "a reload with a hung token is refused after token_timeout (${ms} ms); signals are handled meanwhile"

# Once the token answers, the same file applies.
"$KEYDCTL" reload > "$T/rl.out" || fail "the reload after the hang was refused"
sign_ok k2 "after the reload"

# A token process that is starting (restarted after a crash, now hung in
# C_Login): a reload is refused at once, saying so; once it serves, the
# reload applies.
conf k1 k2 k3
shim_ctl "crash C_Sign" "hang C_Login"
"$KEYDCTL" sign k1 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null || true
wait_for "$T/audit.jsonl" '"event":"token-restart"' 5
wait_for "$P11SHIM_LOG" "C_Login hang" 5
expect_fail "keydctl: reload: refused: the primary token's process is starting; try the reload again once it serves" \
  "$KEYDCTL" reload
shim_ctl ""
wait_for "$T/audit.jsonl" '"event":"token-ready"' 10
"$KEYDCTL" reload > "$T/rl.out" || fail "the reload after the restart was refused"
grep -q "keys +k3" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
pass "a reload while the token process restarts is refused with the reason, and applies once it serves"

# The file changes without a reload; then the token process crashes. The
# fresh one runs with the applied bytes (k1, k2, k3), not the file's (k1
# alone): it serves every key, and status still names the applied hash.
applied=$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)
conf k1
n=$(grep -c '"event":"token-ready"' "$T/audit.jsonl")
shim_ctl "crash C_Sign"
"$KEYDCTL" sign k2 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2>/dev/null || true
shim_ctl ""
for _ in $(seq 100); do
  [[ $(grep -c '"event":"token-ready"' "$T/audit.jsonl") -gt $n ]] && break
  sleep 0.1
done
[[ $(grep -c '"event":"token-ready"' "$T/audit.jsonl") -gt $n ]] ||
  fail "no token process came back: $(tail -3 "$T/keyd.log")"
sign_ok k2 "from the restarted token process"
"$KEYDCTL" status | has "^configuration: sha256 $applied, generation 3" ||
  fail "status: $("$KEYDCTL" status | head -2)"
pass "a restarted token process runs with the applied bytes, not the file's"
stop_keyd
