#!/usr/bin/env bash
# key_copies.sh: keyd serves from session-object copies of its keys
# (key_copies = yes, the default), and SIGUSR2 reads the keys from the
# token again. The trade-off, as docs/configuration.md states it: a copy
# still serves a key deleted from the token until SIGUSR2; after SIGUSR2 a
# missing or replaced key makes the token fail rather than serve a key the
# clients do not know. key_copies = no serves the token objects.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=copytest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen EC:prime256v1 other 02
write_pin
conf() { # extra [keyd] lines; KEYS: the keys to serve
  write_config <<CONF
$(printf '%s\n' "$@")
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
$(if [[ $KEYS == *other* ]]; then printf '[key other]\nuri = pkcs11:token=%s;object=other;type=private\nops = sign\n' "$TOKEN"; fi)
[client me]
uid = $(id -u)
keys = $KEYS
ops = sign, status
CONF
}
KEYS="p256, other"
conf
start_keyd
export_pub 01 "$T/p256.pem"
export_pub 02 "$T/other.pem"
printf 'OPTIONS sip:example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() { # KEY WHAT
  "$KEYDCTL" sign "$1" -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "$2: sign $1 failed: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/$1.pem" "$T/msg" "$T/sig" >/dev/null || fail "$2: bad signature by $1"
}
status_has() {
  "$KEYDCTL" status > "$T/status" || fail status
  grep -q -- "$1" "$T/status" || fail "status lacks '$1': $(cat "$T/status")"
}
sign_ok p256 "copies"
sign_ok other "copies"
status_has "^token $TOKEN: logged in, .*, primary, serving (active), 2 keys in session copies$"
grep -q "token '$TOKEN': 2 of 2 keys served from session copies" "$T/keyd.log" || fail "no start-up line"
pass "both keys served from session copies"

# Another program deletes a key: the copy still serves it (the stated
# trade-off) until SIGUSR2.
p11 --delete-object --type privkey --id 02 >/dev/null 2>&1 || fail "pkcs11-tool could not delete the key"
sign_ok other "deleted on the token, before SIGUSR2"
kill -USR2 "$KEYD_PID"
wait_for "$T/keyd.log" "SIGUSR2: reading the keys from the token again" 5
if "$KEYDCTL" sign other -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
  fail "signed with a key deleted from the token after SIGUSR2"
fi
grep -q "token error: token '$TOKEN' reopened, but key 'other' (pkcs11:token=$TOKEN;object=other;type=private) is not on token '$TOKEN'" "$T/err" ||
  fail "after SIGUSR2 with a key deleted: $(cat "$T/err")"
grep -q '"event":"keys-reload"' "$T/audit.jsonl" || fail "no keys-reload audit line"
pass "a deleted key: served from its copy until SIGUSR2, refused after"

# The key comes back as another key under the same label and id: refused,
# since clients hold the public key keyd served.
p11 --delete-object --type pubkey --id 02 >/dev/null 2>&1 || fail "pkcs11-tool could not delete the public key"
keygen EC:prime256v1 other 02
if "$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
  fail "served while a key on the token is not the key keyd serves"
fi
grep -q "key 'other' on token '$TOKEN' has another public key than the one keyd serves" "$T/err" ||
  fail "with a replaced key: $(cat "$T/err")"
stop_keyd
pass "a key replaced under the same label is refused"

# key_copies = no: the token objects, and a restart serves the new key.
export_pub 02 "$T/other.pem"
conf "key_copies = no"
start_keyd
sign_ok p256 "no copies"
sign_ok other "no copies"
status_has "^token $TOKEN: logged in, .*, 0 keys in session copies$"
grep -q "session copies" "$T/keyd.log" && fail "keyd logged copies with key_copies = no"
pass "key_copies = no: served from the token objects"
