#!/usr/bin/env bash
# Hardening of the running daemon: the seccomp filter on every thread, a
# forbidden call killing the process, the privilege drop, no core dumps,
# and the PIN in no process metadata or log.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=hard
# A PIN that cannot turn up by chance in hex, base64 or timestamps (the
# default 1234 can: the audit log once held it).
PIN="Pn-hard.8Rk2vT"
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
write_pin
write_config <<CONF
sandbox = yes

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client root]
uid = 0
keys = ec
ops = sign, status
CONF

sign_ok() {
  echo hello > "$T/msg"
  "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" || fail "sign failed"
  "$KEYDCTL" pubkey ec -o "$T/pub.pem"
  openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
    fail "signature made under the sandbox does not verify"
}

# 1. Every thread of the socket-facing process runs under the allowlist,
#    every thread of the token process under the denylist (Seccomp: 2 =
#    filter mode), and keyd still serves. The module is mapped in the token
#    process only.
start_keyd
grep -q "seccomp sandbox on" "$T/keyd.log" || fail "no sandbox line in the log"
sign_ok
SERVE=$(serve_pid) || fail "no socket-facing process (keyd-serve) under keyd"
TOKENP=$(token_pids) || fail "no token process (keyd-token) under keyd"
for p in $SERVE $TOKENP; do
  n=0
  for st in /proc/$p/task/*/status; do
    grep -qP '^Seccomp:\t2$' "$st" || fail "thread $(basename "$(dirname "$st")") of $p is not under seccomp"
    n=$((n + 1))
  done
  [[ $n -ge 2 ]] || fail "expected several threads in $p, saw $n"
done
grep -q libsofthsm2 /proc/$TOKENP/maps || fail "the token process does not map the module (the check is blind)"
for p in $KEYD_PID $SERVE; do
  ! grep -q libsofthsm2 /proc/$p/maps || fail "process $p maps the PKCS#11 module"
done
pass "seccomp on every thread of keyd-serve and keyd-token; the module only in keyd-token; signing works"

# 2. The PIN is in no command line, environment or log.
for p in $KEYD_PID $SERVE $TOKENP; do
  for f in cmdline environ; do
    if tr '\0' '\n' < /proc/$p/$f | has -xF "$PIN"; then fail "PIN in /proc/$p/$f"; fi
  done
done
if grep -qF "$PIN" "$T/keyd.log" "$T/audit.jsonl"; then fail "PIN in a log"; fi
pass "no PIN in cmdline, environ or logs"
stop_keyd

# 3. The socket-facing process cannot open the PIN file (Landlock), and a
#    forbidden call (socket(AF_INET), through the test-only probe) kills it
#    with SIGSYS, and keyd with it.
KEYD_TEST_SANDBOX_PROBE=1 start_keyd
kill -USR1 "$KEYD_PID"
set +e
wait "$KEYD_PID"
status=$?
set -e
KEYD_PID=
if grep -q "Landlock is not available in this kernel" "$T/keyd.log"; then
  echo "note: this kernel has no Landlock; keyd said so, and the PIN file check is skipped"
else
  grep -q "sandbox probe: the PIN file does not open: Permission denied" "$T/keyd.log" ||
    { cat "$T/keyd.log" >&2; fail "the socket-facing process could open the PIN file"; }
fi
[[ $status -eq $((128 + 31)) ]] || fail "probe: keyd exited with $status, want 159 (SIGSYS)"
if grep -q "was allowed" "$T/keyd.log"; then fail "socket(AF_INET) was allowed"; fi
pass "the PIN file does not open in keyd-serve; socket(AF_INET) killed it (SIGSYS)"
rm -f "$T/run/keyd.sock"

# 4. Started as root with user = nobody: real, effective and saved uids
#    (and gids) of every keyd process are nobody's once it serves, and it
#    still serves.
chown -R nobody:nogroup "$T/tokens"
sed -i "s|^\[keyd\]|[keyd]\nuser = nobody|" "$T/keyd.conf"
start_keyd
uid=$(id -u nobody)
for p in $KEYD_PID $(serve_pid) $(token_pids); do
  grep -qP "^Uid:\t$uid\t$uid\t$uid\t$uid$" /proc/$p/status ||
    fail "uids of $p after the drop: $(grep ^Uid /proc/$p/status)"
  grep -qP "^Groups:\t$(id -g nobody) ?$" /proc/$p/status ||
    fail "groups of $p after the drop: $(grep ^Groups /proc/$p/status)"
  grep -qP '^CapEff:\t0+$' /proc/$p/status || fail "capabilities kept by $p"
done
sign_ok
pass "dropped to nobody: uids $uid, no capabilities, in every process, still serving"
stop_keyd

# 5. Started directly as an unprivileged user (as systemd does), with no
#    drop: no process is dumpable, so /proc/PID files belong to root, not
#    the user, and no process of the user's can ptrace them.
sed -i "/^user = nobody$/d" "$T/keyd.conf"
chown nobody:nogroup "$T/pin" "$T/keyd.conf" "$T/audit.jsonl" "$T/run"
echo "[client nobody]
uid = nobody
keys = ec
ops = sign" >> "$T/keyd.conf"
sed -i "s|^\[client root\]|[client root-unused]|" "$T/keyd.conf"
KEYD_WRAPPER="setpriv --reuid=nobody --regid=nogroup --clear-groups" start_keyd
for p in $KEYD_PID $(serve_pid) $(token_pids); do
  owner=$(stat -c %U /proc/$p/status)
  [[ $owner == root ]] || fail "started as nobody, /proc/$p files owned by $owner: dumpable"
done
pass "started as nobody without a drop: no process dumpable"
stop_keyd

# 6. Under systemd the PIN comes as a credential: with no pin_file, keyd
#    reads $CREDENTIALS_DIRECTORY/pin.
sed -i "/^pin_file = /d" "$T/keyd.conf"
chown root:root "$T/keyd.conf"
expect_fail "pin_file is required" "$KEYD" -c "$T/keyd.conf" --check-config
mkdir -p "$T/creds"
printf '%s' "$PIN" > "$T/creds/pin"
chmod 0400 "$T/creds/pin"
CREDENTIALS_DIRECTORY=$T/creds "$KEYD" -c "$T/keyd.conf" --check-config > "$T/out" 2>&1 ||
  { cat "$T/out" >&2; fail "the PIN credential was not used"; }
pass "PIN from \$CREDENTIALS_DIRECTORY/pin"
