#!/usr/bin/env bash
# reload_owner.sh: a reload checks the file as a start does. keyd started
# as root with user = nobody refuses, at a start, a configuration file not
# owned by root; its supervisor, which reads the file for reloads after
# the drop, must refuse one owned by nobody too (else keyd's own user,
# which a start never trusts with the file, could rewrite what a reload
# applies).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

TOKEN=rlowner
make_token $TOKEN
keygen EC:prime256v1 sip 01
write_pin
printf 'user = nobody\n[key sip]\nuri = pkcs11:token=%s;object=sip;type=private\nops = sign\n[client admin]\nuid = 0\nkeys = sip\nops = sign, status, reload\n' \
  "$TOKEN" | write_config
chown -R nobody:nogroup "$T/tokens"
chmod 0711 "$T"
# keyd after its drop starts the reload's token process as nobody: keyd and
# keyd-token (found beside keyd) from where nobody may run them (the build
# tree may sit under /root, as in the fresh roots).
mkdir -p "$T/bin"
install -m 0755 "$KEYD" "$KEYD_BUILD_DIR/keyd/keyd-token" "$T/bin/"
KEYD=$T/bin/keyd
# Readable by keyd's user for reloads, owned by root.
chgrp nogroup "$T/keyd.conf"
chmod 0640 "$T/keyd.conf"
start_keyd
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "a reload of the root-owned file was refused: $(cat "$T/rl.out")"

# The same file, owned by keyd's user: refused, as a start refuses it.
chown nobody "$T/keyd.conf"
expect_fail "must be owned by root" "$KEYDCTL" reload
grep -q "reload refused: .*must be owned by root" "$T/keyd.log" ||
  fail "keyd's log does not say why: $(tail -3 "$T/keyd.log")"
chown root "$T/keyd.conf"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload refused once root owns it again: $(cat "$T/rl.out")"
pass "a reload refuses a configuration file owned by keyd's user, as a start does"

# The audit log. keyd made it as root; its supervisor, as nobody, reopens
# it by its path on every reload (for logrotate), so it is nobody's.
[[ $(stat -c %U "$T/audit.jsonl") == nobody ]] ||
  fail "the audit log keyd made belongs to $(stat -c %U "$T/audit.jsonl"), not to keyd's user"
if grep -q "cannot reopen audit log" "$T/keyd.log"; then
  fail "a reload could not reopen the audit log keyd made: $(grep "cannot reopen" "$T/keyd.log" | tail -1)"
fi
printf 'signed after a rotation\n' > "$T/msg"
sign_count() { grep -c '"op":"sign"' "$1" || true; }
# logrotate's way: the file moved away, the next one made for keyd's user
# (create 0640 nobody nogroup), then a reload. Signatures go to the new
# file, which starts from the old file's last line.
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
install -o nobody -g nogroup -m 0640 /dev/null "$T/audit.jsonl"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload after a rotation: $(cat "$T/rl.out")"
old_signs=$(sign_count "$T/audit.jsonl.1")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(sign_count "$T/audit.jsonl") -eq 1 && $(sign_count "$T/audit.jsonl.1") -eq $old_signs ]] ||
  fail "after a rotation and a reload the signature was not logged in the new file"
pass "started as root with user = nobody, keyd makes its audit log nobody's, and a reload reopens it after a rotation"
stop_keyd

# An audit log that is there already, root's and closed to nobody: a start
# says what to change, a reload without a rotation keeps writing it without
# an error, and a rotation to a file nobody may not write is refused with
# the fix named, keyd writing on in the file it holds.
chown root:root "$T/audit.jsonl"
chmod 0600 "$T/audit.jsonl"
start_keyd
grep -q "audit log $T/audit.jsonl: keyd's user nobody may not open it for writing.*chown nobody" "$T/keyd.log" ||
  fail "no warning at start about a root-owned audit log: $(grep -i audit "$T/keyd.log" | tail -3)"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload: $(cat "$T/rl.out")"
wait_for "$T/keyd.log" "audit log $T/audit.jsonl was not rotated: keyd goes on writing it (keyd's user may not open it by its path: Permission denied)"
if grep -q "cannot reopen audit log" "$T/keyd.log"; then
  fail "a reload without a rotation logged an error: $(grep "cannot reopen" "$T/keyd.log" | tail -1)"
fi
n=$(sign_count "$T/audit.jsonl")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(sign_count "$T/audit.jsonl") -eq $((n + 1)) ]] || fail "the signature after the reload is not in the log keyd holds"
[[ $(grep -c '"event":"log-reopened"' "$T/audit.jsonl") -ge 1 ]] || fail "no log-reopened record for a reload of a log keyd's user may not open"
mv "$T/audit.jsonl" "$T/audit.jsonl.2"
install -o root -g root -m 0600 /dev/null "$T/audit.jsonl"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload: $(cat "$T/rl.out")"
wait_for "$T/keyd.log" "cannot reopen audit log $T/audit.jsonl: Permission denied; keeping the old file.*create it as keyd's user"
n=$(sign_count "$T/audit.jsonl.2")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(sign_count "$T/audit.jsonl.2") -eq $((n + 1)) && ! -s $T/audit.jsonl ]] ||
  fail "after a refused rotation keyd did not go on writing the file it holds"
pass "a root-owned audit log: a warning at start, no error on a reload without a rotation, a refused rotation names the fix"
stop_keyd
