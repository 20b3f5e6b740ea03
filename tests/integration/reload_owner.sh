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
stop_keyd
