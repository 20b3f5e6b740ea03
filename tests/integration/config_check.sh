#!/usr/bin/env bash
# config_check.sh: `keyd -c FILE --check-config` against a real token. A
# good configuration passes with a summary; each bad one fails with one
# error line naming what to fix (the file and line, or the key and its
# URI). Also the socket at start-up: a second keyd on the same socket
# refuses and leaves the first one serving; a socket file left by a keyd
# killed with SIGKILL is replaced; a file that is not a socket is not.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=cctest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen rsa:2048 rsa 02
keygen AES:32 aes 03 2>/dev/null
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
ops = sign, decrypt
CONF
cp -p "$T/keyd.conf" "$T/good.conf"
C=$T/keyd.conf

# check_ok: --check-config passes and prints the summary.
"$KEYD" -c "$C" --check-config > "$T/out" 2> "$T/err" ||
  fail "a good configuration failed: $(cat "$T/err")"
[[ $(cat "$T/out") == "keyd: $C is valid: token 'pkcs11:token=$TOKEN', 2 keys, 1 client" ]] ||
  fail "summary: $(cat "$T/out")"
grep -q "error" "$T/err" && fail "errors on a good configuration: $(cat "$T/err")"
[[ ! -e $T/run/keyd.sock && ! -e $T/audit.jsonl ]] ||
  fail "--check-config created the socket or the audit log"
pass "good configuration"

# check_fails WANT: --check-config fails, with exactly one error line,
# and that line is WANT.
check_fails() {
  local want="keyd: error: $1" rc=0
  "$KEYD" -c "$C" --check-config > "$T/out" 2> "$T/err" || rc=$?
  [[ $rc -ne 0 ]] || fail "--check-config passed; want: $want"
  [[ ! -s $T/out ]] || fail "a failed check printed: $(cat "$T/out")"
  [[ $(grep -c 'error' "$T/err") -eq 1 ]] || fail "not one error line: $(cat "$T/err")"
  [[ $(grep 'error' "$T/err") == "$want" ]] || fail "said:
  $(grep 'error' "$T/err")
want:
  $want"
  # The same configuration must not start a daemon either.
  rc=0
  timeout 10 "$KEYD" -c "$C" > "$T/out" 2>&1 || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] || fail "keyd started (or hung) with: $want"
}
# edit_conf SED-SCRIPT: the good configuration changed by sed.
edit_conf() { sed "$1" "$T/good.conf" > "$C"; chmod 0600 "$C"; }
append_conf() { cp "$T/good.conf" "$C"; cat >> "$C"; chmod 0600 "$C"; }

# A key that is not on the token: the key's name and URI.
edit_conf 's/object=p256;/object=nothere;/'
check_fails "key 'p256' (pkcs11:token=$TOKEN;object=nothere;type=private) is not on token '$TOKEN'"
# Ops that do not fit the key's type.
append_conf <<CONF
[key aes]
uri = pkcs11:token=$TOKEN;object=aes
ops = sign
CONF
check_fails "key 'aes' (pkcs11:token=$TOKEN;object=aes) has ops = sign, but it is an AES key"
edit_conf '/^\[key p256\]$/,/^ops/ s/^ops = sign$/ops = decrypt/'
check_fails "key 'p256' (pkcs11:token=$TOKEN;object=p256;type=private) has ops = decrypt, but only RSA keys decrypt"
pass "keys checked against the token"

# The audit key must be no key a client can use: not a served key's
# object, nor the same key pair in another object (a copy, or a restore
# under another label). One key pair of each kind imported twice, under
# the labels NAME-a and NAME-b; the EC ones with their public key objects,
# which keyd reads the point from.
twin() {
  local name=$1 ida=$2 idb=$3 l id
  openssl pkey -in "$T/$name.pem" -outform DER -out "$T/$name.der"
  openssl pkey -in "$T/$name.pem" -pubout -outform DER -out "$T/$name.pub.der"
  for l in a b; do
    id=$ida; [[ $l == b ]] && id=$idb
    p11 --write-object "$T/$name.der" --type privkey --label "$name-$l" --id "$id" \
      --usage-sign --sensitive >/dev/null 2>&1 || fail "cannot import $name-$l"
    p11 --write-object "$T/$name.pub.der" --type pubkey --label "$name-$l" --id "$id" \
      --usage-sign >/dev/null 2>&1 || fail "cannot import the public key of $name-$l"
  done
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/twin-ec.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/twin-rsa.pem" 2>/dev/null
twin twin-ec 0a 0b
twin twin-rsa 0c 0d
# audit_conf KEY: [key KEY] serves KEY-a, and the audit key is KEY-b.
audit_conf() {
  sed "/^\[keyd\]$/a\\
audit_key = pkcs11:token=$TOKEN;object=$1-b;type=private" "$T/good.conf" > "$C"
  printf '[key %s]\nuri = pkcs11:token=%s;object=%s-a;type=private\nops = sign\n' \
    "$1" "$TOKEN" "$1" >> "$C"
  chmod 0600 "$C"
}
for k in twin-ec twin-rsa; do
  audit_conf $k
  check_fails "audit_key pkcs11:token=$TOKEN;object=$k-b;type=private has the same public key as [key $k] (pkcs11:token=$TOKEN;object=$k-a;type=private): they hold the same key pair, and the audit key must be a key that no client can use"
done
# Another key pair as the audit key is fine.
sed "/^\[keyd\]$/a\\
audit_key = pkcs11:token=$TOKEN;object=twin-rsa-b;type=private" "$T/good.conf" > "$C"
printf '[key twin-ec]\nuri = pkcs11:token=%s;object=twin-ec-a;type=private\nops = sign\n' \
  "$TOKEN" >> "$C"
chmod 0600 "$C"
"$KEYD" -c "$C" --check-config > "$T/out" 2> "$T/err" ||
  fail "an audit key of its own was refused: $(cat "$T/err")"
pass "an audit key with a served key's public key is refused"

# The PIN file: mode 0644, a symbolic link, the wrong PIN, missing.
cp -p "$T/good.conf" "$C"
chmod 0644 "$T/pin"
check_fails "PIN file $T/pin has mode 0644; it must be readable by its owner only (chmod 0400 $T/pin)"
chmod 0400 "$T/pin"
mv "$T/pin" "$T/pin.real"
ln -s "$T/pin.real" "$T/pin"
if [[ $(id -u) -eq 0 ]]; then
  check_fails "cannot read PIN file $T/pin: Too many levels of symbolic links (it must not be a symbolic link, nor lie under one: keyd follows no link while it runs as root, since keyd's user could have planted it)"
else
  check_fails "cannot read PIN file $T/pin: Too many levels of symbolic links (it must not be a symbolic link)"
fi
rm "$T/pin"
check_fails "cannot read PIN file $T/pin: No such file or directory"
mv "$T/pin.real" "$T/pin"
PIN=9999 write_pin
check_fails "login to token '$TOKEN' failed: CKR_PIN_INCORRECT (check the PIN file)"
write_pin
# A PIN file in state_dir, which the socket-facing process reads and
# writes, is refused.
mkdir -p "$T/state"
cp -p "$T/pin" "$T/state/pin"
sed -i "s|^pin_file = .*|pin_file = $T/state/pin|" "$C"
check_fails "$C: the PIN file $T/state/pin lies in state_dir $T/state, which the socket-facing process can read: keep it elsewhere"
sed -i "s|^pin_file = .*|pin_file = $T/pin|" "$C"
rm "$T/state/pin"
pass "PIN file checks"

# The configuration file itself: group-writable, a symlink, an unknown
# setting (its line), a token that is not there.
cp -p "$T/good.conf" "$C"
chmod 0620 "$C"
check_fails "configuration $C is writable by group or others (mode 0620); run chmod go-w $C"
chmod 0600 "$C"
ln -s "$T/good.conf" "$T/link.conf"
C=$T/link.conf check_fails "cannot open configuration $T/link.conf: Too many levels of symbolic links (it must not be a symbolic link)"
edit_conf '/^\[key p256\]$/a\
colour = blue'
check_fails "$C:$(grep -n '^colour' "$C" | cut -d: -f1): unknown setting 'colour' in [key p256]"
edit_conf '/^\[keyd\]$/a\
workers = many'
check_fails "$C:$(grep -n '^workers' "$C" | cut -d: -f1): workers = 'many': expected a whole number"
edit_conf "s/^token = .*/token = pkcs11:token=no-such-token/"
# (SoftHSM2 also shows its free slot's uninitialised token: 2 present.)
# The error lists the labels and says what to check, SOFTHSM2_CONF too.
check_fails "no token matches pkcs11:token=no-such-token (2 tokens present; initialised: '$TOKEN'); check the token URI against the labels present, and that module $(realpath "$SOFTHSM_MODULE") is the one that holds the token; SoftHSM2 finds its tokens through the SOFTHSM2_CONF environment variable, which is '$SOFTHSM2_CONF' here ('softhsm2-util --show-slots' with the same SOFTHSM2_CONF lists them)"
# Without SOFTHSM2_CONF (dev-run.sh's token, checked from another shell),
# SoftHSM2 reads its default configuration, whose tokens are others: the
# error says that the variable is not set.
env -u SOFTHSM2_CONF "$KEYD" -c "$T/good.conf" --check-config >/dev/null 2>"$T/err" &&
  fail "--check-config passed without SOFTHSM2_CONF"
! grep -q "no token matches" "$T/err" ||
  grep -q "SOFTHSM2_CONF environment variable, which is not set here" "$T/err" ||
  fail "without SOFTHSM2_CONF: $(cat "$T/err")"
edit_conf "s|^module = .*|module = /nonexistent/libsofthsm2.so|"
check_fails "module /nonexistent/libsofthsm2.so: No such file or directory"
pass "configuration file checks"

# The socket. A second keyd on the same socket refuses and leaves the
# first one (and its socket file) alone.
cp -p "$T/good.conf" "$C"
start_keyd
first=$KEYD_PID
"$KD_RAW" "$T/run/keyd.sock" hello
cp "$T/audit.jsonl" "$T/audit.before"
rc=0
"$KEYD" -c "$C" > "$T/second.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "a second keyd on the same socket started"
grep -q "keyd: error: another process is serving $T/run/keyd.sock; is keyd already running?" \
  "$T/second.log" || fail "second keyd said: $(cat "$T/second.log")"
[[ -S $T/run/keyd.sock ]] || fail "the second keyd removed the first one's socket"
# ...and wrote nothing into the first one's audit log (its hash chain).
cmp -s "$T/audit.before" "$T/audit.jsonl" || fail "the second keyd wrote to the audit log"
"$KD_RAW" "$T/run/keyd.sock" hello || fail "the first keyd stopped serving"
kill -0 "$first" || fail "the first keyd died"
pass "second keyd refused"

# A socket file left behind by SIGKILL (no one answers on it) is
# replaced by the next keyd.
kill -KILL "$first"
wait "$first" 2>/dev/null || true
KEYD_PID=
[[ -S $T/run/keyd.sock ]] || fail "SIGKILL removed the socket file (test assumption)"
! "$KD_RAW" "$T/run/keyd.sock" hello 2>/dev/null || fail "a dead keyd answered"
start_keyd
"$KD_RAW" "$T/run/keyd.sock" hello || fail "keyd did not replace the stale socket"
stop_keyd
[[ ! -e $T/run/keyd.sock ]] || fail "socket file left after SIGTERM"
pass "stale socket replaced"

# A socket directory that others may write: they could remove keyd's
# socket and put their own in its place. Refused; a sticky one is fine.
rm -rf "$T/run"
mkdir -m 0777 "$T/run"
rc=0
"$KEYD" -c "$C" > "$T/dir.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "keyd started with a world-writable socket directory"
grep -q "keyd: error: socket directory $T/run (owner uid $(id -u), mode 0777) must be owned by root or keyd's user and not writable by group or others" \
  "$T/dir.log" || fail "keyd said: $(cat "$T/dir.log")"
chmod 0770 "$T/run"
rc=0
"$KEYD" -c "$C" > "$T/dir.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] && grep -q "mode 0770) must be owned by root" "$T/dir.log" ||
  fail "group-writable socket directory: $(cat "$T/dir.log")"
if [[ $(id -u) -eq 0 ]]; then
  chmod 0755 "$T/run"
  chown 65534 "$T/run"
  rc=0
  "$KEYD" -c "$C" > "$T/dir.log" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] && grep -q "(owner uid 65534, mode 0755) must be owned by root" "$T/dir.log" ||
    fail "socket directory owned by nobody: $(cat "$T/dir.log")"
  chown 0 "$T/run"
fi
chmod 1777 "$T/run"
start_keyd
"$KD_RAW" "$T/run/keyd.sock" hello || fail "keyd in a sticky socket directory"
stop_keyd
rm -rf "$T/run"
mkdir -m 0750 "$T/run"
pass "socket directory checked"

# A regular file where the socket should be is not removed.
echo "precious" > "$T/run/keyd.sock"
rc=0
"$KEYD" -c "$C" > "$T/third.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "keyd started over a regular file"
grep -q "keyd: error: $T/run/keyd.sock exists and is not a socket" "$T/third.log" ||
  fail "keyd said: $(cat "$T/third.log")"
[[ $(cat "$T/run/keyd.sock") == precious ]] || fail "the regular file was changed"
pass "config_check"
