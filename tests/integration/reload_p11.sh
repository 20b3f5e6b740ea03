#!/usr/bin/env bash
# reload_p11.sh: keyd-pkcs11.so in one long-lived process across reloads
# (p11drive objects). A key added to the configuration shows up in the
# first C_FindObjectsInit after the reload's reply; a removed key's
# handles answer CKR_OBJECT_HANDLE_INVALID (and C_SignInit
# CKR_KEY_HANDLE_INVALID), never another key's; a key whose name now maps
# to another public key gets a new handle, and its old handle is invalid;
# a handle found before such a reload never signs with the new key, even
# before the application looks again (its signature is pinned to the key's
# public key), and neither decrypts with it (decryption is pinned too).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

MODULE=$KEYD_BUILD_DIR/client/pkcs11/keyd-pkcs11.so
P11DRIVE=$KEYD_BUILD_DIR/tests/p11drive
[[ -x $P11DRIVE ]] || fail "$P11DRIVE is not built"
TOKEN=rlp11
make_token $TOKEN
keygen EC:prime256v1 a 01
keygen EC:prime256v1 b 02
keygen EC:prime256v1 rot-1 03
keygen EC:prime256v1 rot-2 04
keygen EC:prime256v1 rot-3 05
keygen rsa:2048 dec-1 06
keygen rsa:2048 dec-2 07
write_pin
for k in 01:a 02:b 03:rot-1 04:rot-2 05:rot-3 06:dec-1 07:dec-2; do export_pub "${k%%:*}" "$T/${k#*:}.pem"; done
# conf ROT KEY...: keys KEY... and sip-rot on object ROT; dec-rot (decrypt)
# on object $DEC.
DEC=dec-1
conf() {
  local rot=$1; shift
  {
    for k in "$@"; do
      printf '[key %s]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' \
        "$k" "$TOKEN" "$k"
    done
    printf '[key sip-rot]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' \
      "$TOKEN" "$rot"
    printf '[key dec-rot]\nuri = pkcs11:token=%s;object=%s;type=private\nops = decrypt\n' \
      "$TOKEN" "$DEC"
    echo "[client me]"
    echo "uid = $(id -u)"
    echo "keys = $(IFS=,; echo "$*"), sip-rot, dec-rot"
    echo "ops = sign, decrypt, reload"
  } | write_config
}
printf 'socket = %s\ntoken_label = keyd\n' "$KEYD_SOCKET" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf

conf rot-1 a
start_keyd
mkfifo "$T/p.in" "$T/p.out"
"$P11DRIVE" "$MODULE" objects < "$T/p.in" > "$T/p.out" 2> "$T/p.err" &
exec {TO}> "$T/p.in" {FROM}< "$T/p.out"
IFS= read -r -t 20 line <&"$FROM" || fail "p11drive did not start: $(cat "$T/p.err")"
ask() {
  echo "$1" >&"$TO"
  IFS= read -r -t 20 ANSWER <&"$FROM" || fail "p11drive did not answer '$1': $(cat "$T/p.err")"
}
handle() { ask "find $1"; echo "${ANSWER#key=}"; }
expect() { ask "$1"; [[ $ANSWER == "$2" ]] || fail "'$1' answered '$ANSWER', not '$2'"; }

ha=$(handle a); hr1=$(handle sip-rot)
[[ $ha != 0 && $hr1 != 0 ]] || fail "no handles at start: a=$ha sip-rot=$hr1"
[[ $(handle b) == 0 ]] || fail "b is found before it is configured"
expect "sign $ha $T/a.pem" "rv=0x0"
expect "sign $hr1 $T/rot-1.pem" "rv=0x0"

# Added: found by the first C_FindObjectsInit after the reload.
conf rot-1 a b
"$KEYDCTL" reload > /dev/null || fail "reload refused"
hb=$(handle b)
[[ $hb != 0 && $hb != "$ha" && $hb != "$hr1" ]] || fail "b's handle is $hb (a $ha, sip-rot $hr1)"
expect "sign $hb $T/b.pem" "rv=0x0"
expect "sign $ha $T/a.pem" "rv=0x0"
pass "an added key appears at the first C_FindObjectsInit after the reload"

# a removed, sip-rot on another key: a's handle is invalid, sip-rot gets a
# new handle, and its old one is invalid too.
conf rot-2 b
"$KEYDCTL" reload > /dev/null || fail "reload refused"
hr2=$(handle sip-rot)
[[ $hr2 != 0 && $hr2 != "$hr1" && $hr2 != "$ha" && $hr2 != "$hb" ]] ||
  fail "the rotated key's handle is $hr2 (before: $hr1; a $ha, b $hb)"
[[ $(handle a) == 0 ]] || fail "a is still found after its removal"
expect "sign $hr2 $T/rot-2.pem" "rv=0x0"
expect "attr $ha" "rv=0x82"          # CKR_OBJECT_HANDLE_INVALID
expect "sign $ha $T/a.pem" "rv=0x60" # CKR_KEY_HANDLE_INVALID
expect "attr $hr1" "rv=0x82"
expect "sign $hr1 $T/rot-1.pem" "rv=0x60"
expect "sign $hb $T/b.pem" "rv=0x0"
pass "a removed key's handles are invalid; a rotated key gets a new handle, its old one is invalid"

# sip-rot on rot-3: the handle of rot-2, used before any C_FindObjectsInit,
# is refused (keyd checks the pinned public key), not signed with rot-3.
conf rot-3 b
"$KEYDCTL" reload > /dev/null || fail "reload refused"
expect "sign $hr2 $T/rot-2.pem" "rv=0x60"
hr3=$(handle sip-rot)
[[ $hr3 != 0 && $hr3 != "$hr2" && $hr3 != "$hr1" ]] || fail "rot-3's handle is $hr3"
expect "sign $hr3 $T/rot-3.pem" "rv=0x0"
grep -q "is not the key the client found under that name" "$T/audit.jsonl" ||
  fail "the refusal of the stale handle is not audited"
pass "a handle found before the reload never signs with the key its name now names"

# dec-rot on dec-2: the handle found for dec-1, used before any
# C_FindObjectsInit, does not decrypt with dec-2 (what is encrypted to
# dec-2 is refused, CKR_FUNCTION_FAILED), and dec-2's new handle does.
hd1=$(handle dec-rot)
[[ $hd1 != 0 ]] || fail "no handle for dec-rot"
expect "decrypt $hd1 $T/dec-1.pem" "rv=0x0"
DEC=dec-2
conf rot-3 b
"$KEYDCTL" reload > /dev/null || fail "reload refused"
expect "decrypt $hd1 $T/dec-2.pem" "rv=0x6"
hd2=$(handle dec-rot)
[[ $hd2 != 0 && $hd2 != "$hd1" ]] || fail "dec-2's handle is $hd2 (dec-1's $hd1)"
expect "decrypt $hd2 $T/dec-2.pem" "rv=0x0"
pass "a handle found before the reload never decrypts with the key its name now names"
echo quit >&"$TO"
exec {TO}>&-
stop_keyd
