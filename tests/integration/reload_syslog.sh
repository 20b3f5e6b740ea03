#!/usr/bin/env bash
# reload_syslog.sh: a reload changes syslog and syslog_socket. keyd's
# supervisor connects the new socket and hands it to the socket-facing
# process, which mirrors from the switch on; the test's own listeners
# (datagram sockets in $T; the host's /dev/log is never touched) check:
# (a) syslog = no -> yes: the audit lines written after the reload arrive,
#     byte for byte as in the audit file, behind syslog's header;
# (b) another syslog_socket: lines go there, none to the old one;
# (c) a syslog_socket keyd cannot use (a stream socket, as a syslog-ng
#     set-up may have) refuses the reload with the reason, and lines go
#     on to the socket in force;
# (d) a socket with no daemon yet applies with a warning, as at a start,
#     and keyd-serve connects once it is there (under the seccomp sandbox);
# (e) syslog = yes -> no: nothing more arrives.
# Before reloads could change them, (a) was refused as restart-only.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

PY=/usr/bin/python3
LISTENERS=()
# listen NAME [stream]: a socket $T/NAME.sock whose datagrams go to
# $T/NAME.out, one a line (a stream socket only listens).
listen() {
  "$PY" - "$T/$1.sock" "$T/$1.out" "${2:-dgram}" <<'PYEOF' &
import socket, sys
path, out, kind = sys.argv[1:4]
if kind == "stream":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    open(out, "wb").close()
    while True:
        s.accept()[0].close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "wb", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
PYEOF
  LISTENERS+=($!)
  for _ in $(seq 1 100); do
    [[ -S $T/$1.sock && -e $T/$1.out ]] && return 0
    sleep 0.05
  done
  fail "listener $1 made no socket"
}
trap 'rc=$?; for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null; done; set +e; (exit $rc); cleanup' EXIT

# lines NAME: what listener NAME received, without syslog's header
# "<86>Mmm dd hh:mm:ss keyd[PID]: " (keyd-serve's pid).
lines() {
  sed -n "s/^<86>[A-Z][a-z][a-z] [ 1-3][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] keyd\[$SPID\]: //p" "$T/$1.out"
}
# tail_matches NAME: listener NAME's lines are exactly the audit file's
# last lines, and they end with its last line.
tail_matches() {
  local n i
  for ((i = 0; i < 100; i++)); do
    n=$(lines "$1" | wc -l)
    (( n > 0 )) && cmp -s <(lines "$1") <(tail -n "$n" "$T/audit.jsonl") && return 0
    sleep 0.05
  done
  diff <(lines "$1") <(tail -n "${n:-1}" "$T/audit.jsonl") >&2
  return 1
}
sign() { "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" || fail "sign failed"; }

SYSLOG=no SOCK=
conf() {
  write_config <<CONF
syslog = $SYSLOG
${SOCK:+syslog_socket = $T/$SOCK.sock}
[key ec]
uri = pkcs11:token=$TOKEN;object=ec;type=private
ops = sign
[client me]
uid = $(id -u)
keys = ec
ops = sign, status, reload
CONF
}
reload_ok() {
  "$KEYDCTL" reload > "$T/rl.out" 2> "$T/rl.err" ||
    { cat "$T/rl.err" >&2; fail "reload refused ($1)"; }
  grep -q '^reloaded: sha256 .*: \[keyd\] syslog$' "$T/rl.out" ||
    fail "reload said '$(cat "$T/rl.out")', not '[keyd] syslog'"
}

TOKEN=reloadsyslog
make_token $TOKEN
keygen EC:prime256v1 ec 01
write_pin
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
listen a
listen b
listen s stream
conf
start_keyd
SPID=$(serve_pid) || fail "no socket-facing process under keyd"
sign

# (a) Turned on: the lines after the reload's reach a, as in the file.
SYSLOG=yes SOCK=a
conf
reload_ok "syslog on"
sign
sign
tail_matches a || fail "a's lines are not the audit file's last lines"
(( $(lines a | wc -l) >= 2 )) || fail "a got $(lines a | wc -l) lines, not the two signs'"
pass "syslog = no -> yes: audit lines reach the new socket byte for byte"

# (b) Another socket: b gets the lines, a nothing more.
SOCK=b
conf
reload_ok "to b"
sleep 0.3
na=$(wc -l < "$T/a.out")
sign
tail_matches b || fail "b's lines are not the audit file's last lines"
sleep 0.3
(( $(wc -l < "$T/a.out") == na )) || fail "a still gets lines after the switch to b"
pass "another syslog_socket: lines go to it, not the old one"

# (c) A stream socket cannot take datagrams: refused, b serves on.
h=$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)
SOCK=s
conf
expect_fail "keydctl: reload: refused: cannot connect to the syslog socket $T/s.sock: Protocol wrong type for socket" \
  "$KEYDCTL" reload
grep -q "reload refused: cannot connect to the syslog socket $T/s.sock" "$T/keyd.log" ||
  fail "keyd's log lacks the reason"
"$KEYDCTL" status | has "$h" || fail "status does not show b's configuration in force"
sign
tail_matches b || fail "after the refused reload, lines no longer reach b"
pass "an unusable syslog_socket is refused with the reason; the mirror is unchanged"

# (d) A socket with no daemon yet: applied with a warning; keyd-serve
# connects once it is there.
SOCK=c
conf
reload_ok "to c, absent"
grep -q "reload: cannot connect to the syslog socket $T/c.sock: No such file or directory" "$T/keyd.log" ||
  fail "no warning about the absent socket"
listen c
sleep 1.1
sign
tail_matches c || fail "keyd-serve did not connect to c once it was there"
pass "an absent syslog_socket applies with a warning; keyd connects once it is there"

# (e) Turned off: nothing more arrives.
SYSLOG=no
conf
reload_ok "syslog off"
sleep 0.3
nc=$(wc -l < "$T/c.out")
sign
sign
sleep 0.5
(( $(wc -l < "$T/c.out") == nc )) || fail "lines still reach syslog after syslog = no"
kill -0 "$KEYD_PID" || fail "keyd died"
stop_keyd
pass "syslog = yes -> no: nothing more is mirrored"
