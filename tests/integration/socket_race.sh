#!/usr/bin/env bash
# keyd started as root with user = nobody, in a socket directory that
# nobody owns, while a process running as nobody renames a symbolic link to
# a root-only canary file over the socket path as soon as a socket appears
# there. Before keyd created the socket node with its final owner and
# mode, root's chown/chmod by name followed the link: the canary became
# nobody's, mode 0660. It must never change, and every start must serve.
# Also: root follows no link to the PIN file, the audit log or state_dir,
# and creates the socket directory and state_dir without a chown by name.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

# 200 starts: the old keyd lost the race within a few dozen. The sanitizer
# build, which adds nothing to a race in bind(), runs 50 (each of its
# starts takes three times as long).
STARTS=${KEYD_RACE_STARTS:-200}
[[ ${KEYD_SANITIZE:-OFF} != ON ]] || STARTS=${KEYD_RACE_STARTS:-50}
TOKEN=race
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
write_pin
write_config <<CONF
user = nobody
sandbox = no

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client root]
uid = 0
keys = ec
ops = sign
CONF
chown -R nobody:nogroup "$T/tokens"

# The directory is created by keyd (as root, for nobody) the first time.
start_keyd
[[ $(stat -c '%U %a' "$T/run") == "nobody 750" ]] ||
  fail "socket directory made as $(stat -c '%U %a' "$T/run")"
[[ $(stat -c '%U:%G %a %F' "$T/run/keyd.sock") == "nobody:nogroup 660 socket" ]] ||
  fail "socket made as $(stat -c '%U:%G %a %F' "$T/run/keyd.sock")"
stop_keyd
pass "socket directory and socket created for nobody, 0750 and 0660"

echo "root only" > "$T/canary"
chmod 0600 "$T/canary"
want=$(stat -c '%u:%g %a' "$T/canary")

# The racer (race_rename.c): as nobody, in a tight loop, a link to the
# canary renamed over each socket that appears. Copied where nobody can run
# it.
install -m 0755 "$KEYD_BUILD_DIR/tests/race_rename" "$T/race_rename"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$T/race_rename" \
  "$T/run/keyd.sock" "$T/canary" "$T/run/.swap" &
RACER=$!
# Stops the racer, keeping the test's status for lib.sh's cleanup.
racer_stop() { local rc=$?; kill "$RACER" 2>/dev/null || true; return $rc; }
trap 'racer_stop && cleanup || cleanup' EXIT
swapped=0
for ((i = 1; i <= STARTS; i++)); do
  rm -f "$T/run/keyd.sock"
  : > "$T/keyd.log"
  # (A sanitizer build's exit-time leak check triples the time of each
  # start; the first start above keeps it.)
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    "$KEYD" -c "$T/keyd.conf" > "$T/keyd.log" 2>&1 &
  KEYD_PID=$!
  for _ in $(seq 1 400); do
    grep -q "serving" "$T/keyd.log" && break
    kill -0 "$KEYD_PID" 2>/dev/null || break
    sleep 0.01
  done
  grep -q "serving" "$T/keyd.log" || { cat "$T/keyd.log" >&2; fail "start $i: keyd did not serve"; }
  [[ -L $T/run/keyd.sock ]] && swapped=$((swapped + 1))
  stop_keyd
  got=$(stat -c '%u:%g %a' "$T/canary")
  [[ $got == "$want" ]] || fail "start $i: the root-only canary became $got (was $want)"
done
kill $RACER 2>/dev/null || true
wait $RACER 2>/dev/null || true
[[ $swapped -gt 0 ]] || fail "the racer never replaced the socket: the test proved nothing"
pass "$STARTS root starts against a symlink racer ($swapped sockets replaced): the canary never changed"

# Root follows no link anywhere on the path of the files it opens before
# the drop: a link to the directory of the PIN file is refused.
rm -f "$T/run/keyd.sock"
mkdir "$T/real"
mv "$T/pin" "$T/real/pin"
ln -s "$T/real" "$T/linked"
sed -i "s|^pin_file = .*|pin_file = $T/linked/pin|" "$T/keyd.conf"
expect_fail "cannot read PIN file $T/linked/pin: Too many levels of symbolic links (it must not be a symbolic link, nor lie under one" \
  "$KEYD" -c "$T/keyd.conf"
sed -i "s|^pin_file = .*|pin_file = $T/real/pin|" "$T/keyd.conf"
sed -i "s|^audit_log = .*|audit_log = $T/linked/audit.jsonl|" "$T/keyd.conf"
expect_fail "cannot open audit log $T/linked/audit.jsonl: Too many levels of symbolic links (it must not be a symbolic link, nor lie under one" \
  "$KEYD" -c "$T/keyd.conf"
pass "no link followed to the PIN file or the audit log"
