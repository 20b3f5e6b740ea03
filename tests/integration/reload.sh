#!/usr/bin/env bash
# reload.sh: keydctl reload and SIGHUP change what keyd serves, each change
# on the next request of connections that stay open: a client gains a key
# and loses one, a new client's uid is admitted, a removed client's open
# connection is closed (and one whose uid now maps to another client), a
# rate limit is set and lifted. Invalid configurations are refused with
# their reason, and the running one serves on. Every `reload` record's
# hash is the sha256sum of the file it loaded, `status` shows it, and
# keyd-audit verify passes across all of them (signed checkpoints).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

reload_client_setup
NOGROUP=$(getent group nogroup | cut -d: -f3) || fail "no group nogroup"

TOKEN=reload
make_token $TOKEN
keygen EC:prime256v1 sip-old 01
keygen EC:prime256v1 sip-new 02
keygen EC:prime256v1 audit 0a
write_pin
export_pub 0a "$T/audit.pem"

# conf: the configuration from these variables.
APP_KEYS=sip-old APP_UID=40001 APP_RATE= APP_MAXCONN= NEW_KEY= OTHER= APP2=
conf() {
  {
    echo "socket_group = nogroup"
    echo "audit_key = pkcs11:token=$TOKEN;object=audit;type=private"
    echo "audit_checkpoint_lines = 7"
    echo "[key sip-old]"
    echo "uri = pkcs11:token=$TOKEN;object=sip-old;type=private"
    echo "ops = sign"
    if [[ -n $NEW_KEY ]]; then
      echo "[key sip-new]"
      echo "uri = pkcs11:token=$TOKEN;object=sip-new;type=private"
      echo "ops = sign"
    fi
    echo "[client admin]"
    echo "uid = 0"
    echo "keys = sip-old"
    echo "ops = sign, status, reload"
    echo "[client app]"
    echo "uid = $APP_UID"
    echo "keys = $APP_KEYS"
    echo "ops = sign"
    [[ -z $APP_RATE ]] || echo "rate = $APP_RATE"
    [[ -z $APP_MAXCONN ]] || echo "max_connections = $APP_MAXCONN"
    if [[ -n $OTHER ]]; then
      echo "[client other]"
      echo "uid = 40002"
      echo "keys = sip-old"
      echo "ops = sign"
    fi
    if [[ -n $APP2 ]]; then
      echo "[client app2]"
      echo "uid = 40001"
      echo "keys = sip-old"
      echo "ops = sign"
    fi
  } | write_config
}

# The hashes of the files each applied reload read, in order.
HASHES=()
# reload_ok PATTERN: keydctl reload applies and says PATTERN.
reload_ok() {
  local h
  h=$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)
  "$KEYDCTL" reload > "$T/rl.out" 2> "$T/rl.err" ||
    { cat "$T/rl.err" >&2; fail "reload refused"; }
  grep -q -- "^reloaded: sha256 $h, generation [0-9]*: .*$1" "$T/rl.out" ||
    fail "reload said '$(cat "$T/rl.out")', not '$1' for $h"
  HASHES+=("$h")
}
# reload_refused REASON: keydctl reload exits 1 with the reason, which
# keyd's stderr and a reload-refused record carry too.
reload_refused() {
  local n
  n=$(grep -c '"event":"reload-refused"' "$T/audit.jsonl" || true)
  expect_fail "keydctl: reload: refused: .*$1" "$KEYDCTL" reload
  grep '"event":"reload-refused"' "$T/audit.jsonl" | sed -n "$((n + 1))p" |
    has -- "$1" || fail "no reload-refused record saying '$1'"
  grep -q "reload refused: .*$1" "$T/keyd.log" || fail "stderr lacks '$1'"
}

# A client process with one connection: start_client NAME UID; then
# ask NAME COMMAND sets ANSWER to its one-line reply.
declare -A TO FROM
start_client() {
  mkfifo "$T/$1.in" "$T/$1.out"
  as_user "$2" "$NOGROUP" env KEYD_SOCKET="$KEYD_SOCKET" ${KEYD_P11_PRELOAD:+LD_PRELOAD=$KEYD_P11_PRELOAD} \
    ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 "$PY" "$CLIENT" repl \
    < "$T/$1.in" > "$T/$1.out" 2> "$T/$1.err" &
  exec {TO[$1]}> "$T/$1.in" {FROM[$1]}< "$T/$1.out"
}
ask() {
  echo "$2" >&"${TO[$1]}"
  IFS= read -r -t 20 ANSWER <&"${FROM[$1]}" || ANSWER="(no answer: $(cat "$T/$1.err"))"
}
expect_answer() {
  local who=$1 cmd=$2 want=$3
  ask "$who" "$cmd"
  [[ $ANSWER =~ $want ]] || fail "$who: '$cmd' answered '$ANSWER', not /$want/"
}

conf
start_keyd
HASHES+=("$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)")
start_client app 40001
expect_answer app "name" "^ok app$"
expect_answer app "sign sip-old" "^ok$"
expect_answer app "sign sip-new" "^err -7 "

# A client gains a key: the next request on its open connection signs.
NEW_KEY=1 APP_KEYS="sip-old, sip-new"
conf
reload_ok "clients ~app; keys +sip-new"
expect_answer app "sign sip-new" "^ok$"
pass "a key added to a client signs on its open connection's next request"

# A client loses a key: refused on the next request, not after a reconnect.
APP_KEYS=sip-new
conf
reload_ok "clients ~app$"
expect_answer app "sign sip-old" "^err -6 client 'app' may not use key 'sip-old'"
expect_answer app "sign sip-new" "^ok$"
pass "a key taken from a client is refused on its open connection's next request"

# A new client's uid is admitted after the reload.
expect_fail "" as_user 40002 "$NOGROUP" "$KEYDCTL" list
OTHER=1
conf
reload_ok "clients .*+other"
start_client other 40002
expect_answer other "sign sip-old" "^ok$"
pass "a new client's uid is admitted"

# A rate limit set and lifted, on the same connection.
APP_RATE=1/s
conf
reload_ok "clients ~app"
limited=0
for _ in $(seq 10); do
  ask app "sign sip-new"
  [[ $ANSWER == "err -14 "* ]] && limited=$((limited + 1))
done
[[ $limited -ge 5 ]] || fail "rate = 1/s limited only $limited of 10 requests"
APP_RATE=
conf
reload_ok "clients ~app"
for _ in $(seq 10); do expect_answer app "sign sip-new" "^ok$"; done
pass "a rate limit applies and is lifted on the next requests"

# A lowered max_connections closes nothing; it applies to new connections.
APP_MAXCONN=1
conf
reload_ok "clients ~app"
expect_answer app "sign sip-new" "^ok$"
expect_fail "" as_user 40001 "$NOGROUP" "$KEYDCTL" list
wait_for "$T/audit.jsonl" '"event":"busy","client":"app".*max_connections reached (1)'
APP_MAXCONN=
conf
reload_ok "clients ~app"
as_user 40001 "$NOGROUP" "$KEYDCTL" list > /dev/null || fail "a second connection is refused after the limit went"
expect_answer app "sign sip-new" "^ok$"
pass "a lowered max_connections keeps the open connection and refuses a new one"

# Invalid configurations: refused with the reason; nothing changes.
good=$(cat "$T/keyd.conf")
echo "bogus line" >> "$T/keyd.conf"
reload_refused "keyd.conf:[0-9]*: syntax error"
conf; sed -i 's/^keys = sip-new$/keys = sip-nope/' "$T/keyd.conf"
reload_refused "keys: no .key sip-nope. is defined"
conf; sed -i "s#^socket = .*#socket = $T/other.sock#" "$T/keyd.conf"
reload_refused "socket cannot change on reload (.*); restart keyd"
conf; sed -i 's/object=sip-new;/object=sip-gone;/' "$T/keyd.conf"
reload_refused "the primary token cannot serve the new configuration: .*sip-new"
conf; chmod 0666 "$T/keyd.conf"
reload_refused "writable by group or others"
chmod 0600 "$T/keyd.conf"
[[ $(cat "$T/keyd.conf") == "$good" ]] || fail "conf() is not the running file"
expect_answer app "sign sip-new" "^ok$"
expect_answer app "sign sip-old" "^err -6 "
expect_answer other "sign sip-old" "^ok$"
pass "invalid configurations are refused with their reason; the running one serves on"

# A removed client's open connection is closed at the reload, with a
# record; one whose uid now maps to another client too.
OTHER=
conf
reload_ok "clients .*-other"
wait_for "$T/audit.jsonl" '"event":"connection-closed","client":"other".*no \[client\] matches'
expect_answer other "sign sip-old" "^err -19 "
APP_UID=40003 APP2=1
conf
reload_ok "clients .*~app +app2"
wait_for "$T/audit.jsonl" '"event":"connection-closed","client":"app".*matches client .app2.'
# libkeyd connects again (keyd_sign's retry): as app2 now.
expect_answer app "sign sip-new" "^err -6 client 'app2' may not use key 'sip-new'"
pass "connections of a removed client, or of a peer now another client's, are closed and audited"

# keydctl reload reopens the audit log too (logrotate's postrotate runs
# systemctl reload, which is keydctl reload).
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
reload_ok "no change"
[[ -f $T/audit.jsonl ]] || fail "keydctl reload did not reopen the audit log"
grep -q '"event":"log-reopened"' "$T/audit.jsonl" || fail "no log-reopened record"
pass "keydctl reload reopens the audit log"

# SIGHUP: the same reload (and the log reopened); status shows the hash.
APP_UID=40001 APP2=
conf
h=$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)
mv "$T/audit.jsonl" "$T/audit.jsonl.2"
kill -HUP "$KEYD_PID"
for _ in $(seq 100); do
  [[ $(grep -c '"event":"reload"' "$T/audit.jsonl" 2>/dev/null) -gt 0 ]] && break
  sleep 0.1
done
grep '"event":"reload"' "$T/audit.jsonl" | tail -n 1 | has "sha256 $h" ||
  fail "SIGHUP did not reload $h"
grep -q '"event":"log-reopened"' "$T/audit.jsonl" || fail "SIGHUP did not reopen the log"
HASHES+=("$h")
"$KEYDCTL" status | has "^configuration: sha256 $h, generation [0-9]*, applied 20" ||
  fail "status does not show the configuration in force"
pass "SIGHUP reloads and reopens the audit log; status shows the hash in force"

# The audit trail: each reload record names the bytes it applied.
mapfile -t got < <(cat "$T/audit.jsonl.1" "$T/audit.jsonl.2" "$T/audit.jsonl" |
  grep -o '"event":"reload","result":"ok","detail":"sha256 [0-9a-f]*' | sed 's/.*sha256 //')
[[ ${#got[@]} -eq $((${#HASHES[@]} - 1)) ]] ||
  fail "${#got[@]} reload records for $((${#HASHES[@]} - 1)) reloads"
for i in "${!got[@]}"; do
  [[ ${got[$i]} == "${HASHES[$((i + 1))]}" ]] ||
    fail "reload record $i has ${got[$i]}, the file had ${HASHES[$((i + 1))]}"
done
exec {TO[app]}>&- {TO[other]}>&-
stop_keyd
"$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl.1" "$T/audit.jsonl.2" "$T/audit.jsonl" \
  --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 ||
  { cat "$T/v.out" >&2; fail "keyd-audit verify fails across reloads"; }
grep -q "all [0-9]* lines verified" "$T/v.out" || { cat "$T/v.out"; fail "no verdict"; }
pass "every reload record's hash is the file's sha256sum; the log verifies across reloads"
