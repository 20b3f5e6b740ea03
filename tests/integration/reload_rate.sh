#!/usr/bin/env bash
# reload_rate.sh: a reload does not hand a client a fresh burst. A client
# that has used up its rate stays limited across reloads that do not
# change its rate (operators reload often, and a client granted the
# reload op could otherwise reload itself past its rate).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

reload_client_setup
NOGROUP=$(getent group nogroup | cut -d: -f3) || fail "no group nogroup"

TOKEN=rlrate
make_token $TOKEN
keygen EC:prime256v1 sip 01
write_pin

N=0
conf() {
  {
    echo "socket_group = nogroup"
    echo "# reload $N"
    echo "[key sip]"
    echo "uri = pkcs11:token=$TOKEN;object=sip;type=private"
    echo "ops = sign"
    echo "[client admin]"
    echo "uid = 0"
    echo "keys = sip"
    echo "ops = sign, status, reload"
    echo "[client app]"
    echo "uid = 40001"
    echo "keys = sip"
    echo "ops = sign"
    echo "rate = 2/m"
  } | write_config
}

mkfifo "$T/app.in" "$T/app.out"
conf
start_keyd
as_user 40001 "$NOGROUP" env KEYD_SOCKET="$KEYD_SOCKET" \
  ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 "$PY" "$CLIENT" repl \
  < "$T/app.in" > "$T/app.out" 2> "$T/app.err" &
exec {TO}> "$T/app.in" {FROM}< "$T/app.out"
ask() {
  echo "$1" >&"$TO"
  IFS= read -r -t 20 ANSWER <&"$FROM" || ANSWER="(no answer: $(cat "$T/app.err"))"
}

# Its burst (2, the hello's included) used up: limited.
for _ in 1 2 3; do ask "sign sip"; done
[[ $ANSWER == "err -14 "* ]] || fail "rate = 2/m did not limit: '$ANSWER'"

# Five reloads (each a new file: a comment changes); after each, the
# client is still over its rate.
for N in 1 2 3 4 5; do
  conf
  "$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload $N: $(cat "$T/rl.out")"
  ask "sign sip"
  [[ $ANSWER == "err -14 "* ]] ||
    fail "after reload $N the rate-limited client signed: '$ANSWER'"
done
pass "a reload does not give a rate-limited client a fresh burst"
