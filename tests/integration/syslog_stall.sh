#!/usr/bin/env bash
# syslog_stall.sh: a syslog daemon that stops reading never stops keyd.
# The test runs its own rsyslogd on a private socket ($T/log.sock, keyd's
# syslog_socket; the host's /dev/log and rsyslog are never touched):
# (a) keyd mirrors its audit lines there, byte for byte, as authpriv.info
#     with ident keyd[PID];
# (b) with rsyslogd stopped (SIGSTOP), 2000 pipelined signs are all
#     answered in time, and so is status, which counts the dropped lines
#     (text and Prometheus); the audit log file still has every line;
# (c) after SIGCONT, lines reach rsyslogd again;
# (d) after rsyslogd restarts on a new socket, keyd connects again (under
#     the seccomp sandbox in a normal build) and mirrors again.
# The keyd of before this test, which called syslog(3) under the audit
# lock, answered nothing after about ten requests in (b).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

command -v rsyslogd >/dev/null ||
  { echo "SKIP: rsyslogd is not installed (scripts/deps.sh installs rsyslog)"; exit 77; }

N=2000
RSYSLOG_PID=
start_rsyslogd() {
  rm -f "$T/log.sock"
  rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslog.pid" >>"$T/rsyslog.log" 2>&1 &
  RSYSLOG_PID=$!
  for _ in $(seq 1 100); do
    [[ -S $T/log.sock ]] && return 0
    kill -0 "$RSYSLOG_PID" 2>/dev/null || { cat "$T/rsyslog.log" >&2; fail "rsyslogd exited"; }
    sleep 0.05
  done
  fail "rsyslogd made no socket within 5 s"
}
stop_rsyslogd() {
  [[ -n $RSYSLOG_PID ]] || return 0
  kill -CONT "$RSYSLOG_PID" 2>/dev/null || true
  kill -TERM "$RSYSLOG_PID" 2>/dev/null || true
  wait "$RSYSLOG_PID" 2>/dev/null || true
  RSYSLOG_PID=
}
# rsyslogd goes first (a stopped one must not outlive the test), then
# lib.sh's cleanup, which reads the test's exit status from $? (set +e:
# the subshell that sets it must not end the trap).
trap 'rc=$?; stop_rsyslogd; set +e; (exit $rc); cleanup' EXIT

# in_syslog LINE [SECONDS]: until rsyslogd has written LINE, as keyd's
# authpriv.info message with this keyd's pid.
in_syslog() {
  local want="authpriv.info keyd[$KPID]: $1" i
  for ((i = 0; i < ${2:-5} * 20; i++)); do
    grep -qxF -- "$want" "$T/syslog.out" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

cat > "$T/rsyslog.conf" <<CONF
global(workDirectory="$T")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$T/log.sock" RateLimit.Interval="0" CreatePath="off")
template(name="keydtest" type="string"
  string="%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\n")
*.* action(type="omfile" file="$T/syslog.out" template="keydtest")
CONF
start_rsyslogd

TOKEN=syslogtest
make_token $TOKEN
keygen EC:prime256v1 ec 01
write_pin
write_config <<CONF
syslog = yes
syslog_socket = $T/log.sock
[key ec]
uri = pkcs11:token=$TOKEN;object=ec;type=private
ops = sign
[client me]
uid = $(id -u)
keys = ec
ops = sign, status
CONF
sed 's|^syslog_socket = .*|syslog_socket = log.sock|' "$T/keyd.conf" > "$T/bad.conf"
chmod 0600 "$T/bad.conf"
expect_fail "syslog_socket = 'log.sock': must be an absolute path" \
  "$KEYD" -c "$T/bad.conf" --check-config
start_keyd
# keyd's own pid, also under a KEYD_WRAPPER (strace -f).
KPID=$KEYD_PID
[[ -z ${KEYD_WRAPPER:-} ]] || KPID=$(pgrep -n -x keyd -P "$KEYD_PID")
# The socket-facing process writes the audit log and its syslog mirror.
KPID=$(pgrep -P "$KPID" -x keyd-serve) || fail "no socket-facing process under keyd"
S=$T/run/keyd.sock
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
sign() { timeout 5 "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" ||
  fail "$1: sign failed or took over 5 s"; }

# (a) The start line and a request line, exactly as in the audit log.
in_syslog "$(head -1 "$T/audit.jsonl")" || fail "the start line is not in syslog: $(cat "$T/syslog.out")"
sign "rsyslogd running"
in_syslog "$(tail -1 "$T/audit.jsonl")" ||
  fail "the sign's audit line is not in syslog: $(tail -3 "$T/syslog.out")"
pass "audit lines reach syslog as authpriv.info keyd[$KPID]"

# (b) rsyslogd stopped: its socket's queue fills after a few lines.
kill -STOP "$RSYSLOG_PID"
before=$(wc -l < "$T/audit.jsonl")
t0=$(date +%s%N)
timeout 20 "$KD_RAW" "$S" pipeline $N ec > /dev/null ||
  fail "$N signs with syslog stopped: not all answered (status $?)"
out=$(timeout 5 "$KEYDCTL" status) || fail "status with syslog stopped: no answer"
prom=$(timeout 5 "$KEYDCTL" status --prometheus) || fail "status --prometheus: no answer"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
after=$(wc -l < "$T/audit.jsonl")
(( after - before >= N + 2 )) || fail "the audit log has $((after - before)) new lines, not $((N + 2))"
dropped=$(sed -n 's/^syslog: \([0-9]*\) audit lines dropped.*/\1/p' <<< "$out")
[[ -n $dropped ]] && (( dropped > 0 )) || fail "status shows no dropped syslog lines: $out"
pdropped=$(sed -n 's/^keyd_syslog_dropped_total \([0-9]*\)$/\1/p' <<< "$prom")
[[ -n $pdropped ]] && (( pdropped >= dropped )) ||
  fail "keyd_syslog_dropped_total is '$pdropped' (text status: $dropped)"
grep -q '^# TYPE keyd_syslog_dropped_total counter$' <<< "$prom" || fail "no TYPE line for keyd_syslog_dropped_total"
pass "$N signs and status answered in $ms ms with syslog stopped; $dropped lines dropped"

# (c) rsyslogd continues: new lines reach it again.
kill -CONT "$RSYSLOG_PID"
sign "after SIGCONT"
in_syslog "$(tail -1 "$T/audit.jsonl")" || fail "no syslog line after SIGCONT: $(tail -3 "$T/syslog.out")"
pass "lines reach syslog again after SIGCONT"

# (d) rsyslogd restarts: the first sign finds its socket gone (dropped);
# a second after keyd's last try, it connects to the new one.
stop_rsyslogd
sign "rsyslogd stopped"
start_rsyslogd
sleep 1.1
sign "rsyslogd restarted"
in_syslog "$(tail -1 "$T/audit.jsonl")" || fail "no syslog line after rsyslogd restarted: $(tail -3 "$T/syslog.out")"
kill -0 "$KEYD_PID" || fail "keyd died"
pass "keyd connects again to a restarted rsyslogd"

stop_keyd
grep -F "syslog socket" "$T/keyd.log" && fail "keyd could not reach syslog"
pass "keyd stopped cleanly"
