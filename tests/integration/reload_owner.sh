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

# The audit log. keyd made it as root; its supervisor, as nobody, may not
# open it by its path. A reload with no rotation goes on with the file keyd
# holds, as any reopen of the same file does (a checkpoint, log-reopened),
# without an error.
[[ $(stat -c %U "$T/audit.jsonl") == root ]] || fail "the test expects keyd, started as root, to make a root-owned log"
printf 'signed after a reload\n' > "$T/msg"
count() { grep -c -- "$1" "$2" || true; }
reopened=$(count '"event":"log-reopened"' "$T/audit.jsonl")
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload: $(cat "$T/rl.out")"
wait_for "$T/keyd.log" "audit log $T/audit.jsonl is still the file keyd writes: keyd goes on writing it (keyd's user may not open it by its path: Permission denied)"
if grep -q "cannot reopen audit log" "$T/keyd.log"; then
  fail "a reload without a rotation logged an error: $(grep "cannot reopen" "$T/keyd.log" | tail -1)"
fi
[[ $(count '"event":"log-reopened"' "$T/audit.jsonl") -eq $((reopened + 1)) ]] ||
  fail "no log-reopened record for the reload of a log keyd's user may not open"
signs=$(count '"op":"sign"' "$T/audit.jsonl")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(count '"op":"sign"' "$T/audit.jsonl") -eq $((signs + 1)) ]] ||
  fail "the signature after the reload is not in the log keyd holds"
pass "started as root with user = nobody, a reload goes on with the root-owned log keyd made, without an error"

# logrotate's way: the file moved away, the next one made for keyd's user
# (create 0640 nobody nogroup), then a reload. Signatures go to the new
# file, whose first line carries the old file's last hash.
mv "$T/audit.jsonl" "$T/audit.jsonl.1"
install -o nobody -g nogroup -m 0640 /dev/null "$T/audit.jsonl"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload after a rotation: $(cat "$T/rl.out")"
signs=$(count '"op":"sign"' "$T/audit.jsonl.1")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(count '"op":"sign"' "$T/audit.jsonl") -eq 1 && $(count '"op":"sign"' "$T/audit.jsonl.1") -eq $signs ]] ||
  fail "after a rotation and a reload the signature was not logged in the new file"
last=$(tail -n 1 "$T/audit.jsonl.1" | tr -d '\n' | sha256sum | cut -d' ' -f1)
head -n 1 "$T/audit.jsonl" | grep -q "\"prev\":\"$last\"" ||
  fail "the new file does not carry the old file's last hash"
pass "after a rotation to a file keyd's user may write, a reload follows it and the chain goes on"

# A rotation to a file keyd's user may not write: refused with the fix
# named, and keyd writes on in the file it holds.
mv "$T/audit.jsonl" "$T/audit.jsonl.2"
install -o root -g root -m 0600 /dev/null "$T/audit.jsonl"
"$KEYDCTL" reload > "$T/rl.out" 2>&1 || fail "reload: $(cat "$T/rl.out")"
wait_for "$T/keyd.log" "cannot reopen audit log $T/audit.jsonl: Permission denied; keeping the old file (keyd's user must be able to open the new file for writing.*create it as keyd's user)"
signs=$(count '"op":"sign"' "$T/audit.jsonl.2")
"$KEYDCTL" sign sip -a ecdsa-sha256 -i "$T/msg" -o /dev/null
[[ $(count '"op":"sign"' "$T/audit.jsonl.2") -eq $((signs + 1)) && ! -s $T/audit.jsonl ]] ||
  fail "after a refused rotation keyd did not go on writing the file it holds"
pass "a rotation to a file keyd's user may not write is refused with the fix named, and nothing is lost"
stop_keyd
