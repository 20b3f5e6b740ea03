#!/usr/bin/env bash
# untrusted_peer.sh: keydctl must refuse a socket served by a uid that is
# neither root nor keyd's user, before sending it anything, and say which
# uid it found. A fake keyd (fake_server) runs as nobody (65534).
set -euo pipefail

build=${KEYD_BUILD_DIR:?KEYD_BUILD_DIR must name the build directory}
keydctl=$build/client/keydctl
fake=$build/tests/fake_server
nobody_uid=65534

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (to run the fake server as uid $nobody_uid)"
  exit 77
fi
for f in "$keydctl" "$fake"; do
  [[ -x $f ]] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d)
fake_pid=
cleanup() {
  if [[ -n $fake_pid ]]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# nobody must reach the binary and create its socket in $tmp/run.
chmod 0755 "$tmp"
install -m 0755 "$fake" "$tmp/fake_server"
mkdir "$tmp/run"
chown "$nobody_uid:$nobody_uid" "$tmp/run"
sock=$tmp/run/keyd.sock

setpriv --reuid=$nobody_uid --regid=$nobody_uid --clear-groups \
  "$tmp/fake_server" "$sock" &
fake_pid=$!
for _ in $(seq 100); do
  [[ -S $sock ]] && break
  sleep 0.05
done
[[ -S $sock ]] || { echo "FAIL: the fake server did not create $sock"; exit 1; }
owner=$(stat -c %u "$sock")
[[ $owner == "$nobody_uid" ]] || { echo "FAIL: $sock is owned by $owner"; exit 1; }

# Control: trusting uid 65534 explicitly, the same socket serves list. So
# the refusal below is the peer check, not a broken fake.
out=$(KEYD_DAEMON_USER=$nobody_uid "$keydctl" -s "$sock" list)
grep -q '^fake-key ' <<<"$out" || { echo "FAIL: control list gave: $out"; exit 1; }

fail=0
check_refused() {
  local rc=0 out err before=$fail
  out=$(env -u KEYD_DAEMON_USER "$@" 2>"$tmp/err") || rc=$?
  err=$(cat "$tmp/err")
  if [[ $rc -eq 0 ]]; then
    echo "FAIL: '$*' succeeded against a socket served by uid $nobody_uid"; fail=1; return
  fi
  if [[ -n $out ]]; then echo "FAIL: '$*' wrote to stdout: $out"; fail=1; fi
  if [[ $(wc -l <"$tmp/err") -ne 1 ]]; then echo "FAIL: '$*' wrote not one line: $err"; fail=1; fi
  grep -q "served by uid $nobody_uid" <<<"$err" || { echo "FAIL: no uid in: $err"; fail=1; }
  grep -q "refusing it" <<<"$err" || { echo "FAIL: no refusal in: $err"; fail=1; }
  grep -q "$sock" <<<"$err" || { echo "FAIL: socket not named in: $err"; fail=1; }
  grep -q "^keydctl: " <<<"$err" || { echo "FAIL: no keydctl prefix in: $err"; fail=1; }
  [[ $fail -eq $before ]] && echo "ok: '$*' refused: $err"
  return 0
}

check_refused "$keydctl" -s "$sock" list
check_refused "$keydctl" list -s "$sock"
check_refused env KEYD_SOCKET="$sock" "$keydctl" status
printf 'hello' >"$tmp/msg"
check_refused "$keydctl" sign fake-key -a ecdsa-sha256 -i "$tmp/msg" -s "$sock"

exit $fail
