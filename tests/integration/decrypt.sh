#!/usr/bin/env bash
# decrypt.sh: RSA-OAEP decryption through keyd. OpenSSL encrypts to the
# public key pkcs11-tool reads from the token; keydctl decrypts with the
# private key on the token. SoftHSM2 does OAEP with SHA-1 only (FIELD-
# NOTES), so rsa-oaep-sha256 must give a clear "not supported" error; a
# corrupted ciphertext a decryption error; a ciphertext of the wrong
# length a length error.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=dectest
make_token $TOKEN
keygen rsa:2048 rsa 01
keygen rsa:3072 rsa3k 02
keygen EC:prime256v1 p256 03
write_pin
write_config <<CONF
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = decrypt
[key rsa3k]
uri = pkcs11:token=$TOKEN;object=rsa3k;type=private
ops = sign, decrypt
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[client me]
uid = $(id -u)
keys = rsa, rsa3k, p256
ops = sign, decrypt
CONF
start_keyd
export_pub 01 "$T/rsa.pem"
export_pub 02 "$T/rsa3k.pem"

oaep_sha1() { # PUB IN OUT
  openssl pkeyutl -encrypt -pubin -inkey "$1" -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha1 -in "$2" -out "$3"
}

# Plaintexts: a 32-byte key, one byte, and the longest OAEP-SHA1 allows
# for RSA-2048 (256 - 2*20 - 2 = 214 bytes).
head -c 32 /dev/urandom > "$T/p1"
printf 'A' > "$T/p2"
head -c 214 /dev/urandom > "$T/p3"
for p in p1 p2 p3; do
  oaep_sha1 "$T/rsa.pem" "$T/$p" "$T/ct"
  [[ $(stat -c %s "$T/ct") -eq 256 ]] || fail "ciphertext is not 256 bytes"
  rm -f "$T/out"
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out" ||
    fail "decrypt $p"
  cmp -s "$T/$p" "$T/out" || fail "decrypt $p: plaintext differs"
  [[ $(stat -c %a "$T/out") == 600 ]] || fail "plaintext file is mode $(stat -c %a "$T/out")"
done
# OAEP is randomised: a second encryption differs and decrypts the same.
oaep_sha1 "$T/rsa.pem" "$T/p1" "$T/ct2"
oaep_sha1 "$T/rsa.pem" "$T/p1" "$T/ct"
! cmp -s "$T/ct" "$T/ct2" || fail "two OAEP encryptions are equal"
"$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 < "$T/ct2" > "$T/out"
cmp -s "$T/p1" "$T/out" || fail "decrypt from stdin to stdout"
# An existing output file readable by others is made 0600 first.
install -m 0644 /dev/null "$T/out"
"$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out"
[[ $(stat -c %a "$T/out") == 600 ]] || fail "existing output left mode $(stat -c %a "$T/out")"
cmp -s "$T/p1" "$T/out" || fail "decrypt into an existing file"
# A 3072-bit key: 384-byte ciphertexts.
oaep_sha1 "$T/rsa3k.pem" "$T/p3" "$T/ct3"
"$KEYDCTL" decrypt rsa3k -a rsa-oaep-sha1 -i "$T/ct3" -o "$T/out"
cmp -s "$T/p3" "$T/out" || fail "RSA-3072 decrypt"
pass "rsa-oaep-sha1 round trips"

# keyd found out at start-up that the token decrypts OAEP with SHA-1 only,
# says so in list, and refuses SHA-256 and up.
"$KEYDCTL" list > "$T/list"
grep -Eq '^rsa +rsa +2048 +decrypt \(rsa-oaep-sha1\)$' "$T/list" ||
  fail "list does not name the one OAEP hash: $(cat "$T/list")"
pass "list names rsa-oaep-sha1 as the one decryption algorithm"
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
  -pkeyopt rsa_oaep_md:sha256 -in "$T/p1" -out "$T/ct256"
for h in 256 384 512; do
  expect_error "keydctl: decrypt rsa: not supported by this token: keyd offers rsa-oaep-sha1 for key 'rsa', not rsa-oaep-sha$h (what the token decrypted with when keyd started)" \
    "$KEYDCTL" decrypt rsa -a "rsa-oaep-sha$h" -i "$T/ct256" -o "$T/out"
done
pass "rsa-oaep-sha256/384/512 not supported"

# Wrong length: one byte short, one byte long, empty, a 3072-bit
# ciphertext to a 2048-bit key.
head -c 255 "$T/ct" > "$T/short"
{ cat "$T/ct"; printf 'x'; } > "$T/long"
: > "$T/empty"
expect_error "keydctl: decrypt rsa: input has the wrong length: an RSA-2048 ciphertext is 256 bytes, not 255" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/short" -o "$T/out"
expect_error "keydctl: decrypt rsa: input has the wrong length: an RSA-2048 ciphertext is 256 bytes, not 257" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/long" -o "$T/out"
# (an empty one is refused by libkeyd before it is sent)
expect_error "keydctl: decrypt rsa: input has the wrong length: an RSA ciphertext has 1 to 1024 bytes; this one has 0" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/empty" -o "$T/out"
expect_error "keydctl: decrypt rsa: input has the wrong length: an RSA-2048 ciphertext is 256 bytes, not 384" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct3" -o "$T/out"
head -c 1025 /dev/zero > "$T/huge"
expect_error "keydctl: decrypt rsa: input too large: $T/huge holds more than 1024 bytes, the most this command takes" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/huge" -o "$T/out"
pass "length errors"

# Not an RSA decryption key.
expect_error "keydctl: decrypt p256: permission denied by policy: key 'p256' is not for decrypt" \
  "$KEYDCTL" decrypt p256 -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out"
expect_error "keydctl: decrypt nope: unknown key: no key named 'nope'" \
  "$KEYDCTL" decrypt nope -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out"
expect_error_rc 2 "keydctl: rsa-oaep-sha1 is a decryption algorithm, not for sign; run keydctl --help" \
  "$KEYDCTL" sign rsa -a rsa-oaep-sha1 -i "$T/ct"
pass "refusals"

# The daemon still decrypts after all of that (no operation left active
# in a worker's session).
for _ in 1 2 3 4; do
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ct" -o "$T/out"
  cmp -s "$T/p1" "$T/out" || fail "decrypt after errors"
done

# No plaintext in the audit log or keyd's log; the sizes are there.
for f in "$T/audit.jsonl" "$T/keyd.log"; do
  for p in p1 p3; do
    hex=$(od -An -v -tx1 "$T/$p" | tr -d ' \n')
    ! grep -qi "$hex" "$f" || fail "plaintext $p in $f"
    ! grep -qaF -f <(head -c 16 "$T/$p") "$f" 2>/dev/null || fail "raw plaintext $p in $f"
  done
done
line=$(grep -m 1 '"op":"decrypt","key":"rsa","mech":"rsa-oaep-sha1","result":"ok"' "$T/audit.jsonl")
[[ -n $line ]] || fail "no audit line for a decryption"
[[ $(json_field "$line" request_bytes) -gt 256 ]] || fail "request_bytes: $line"
pass "audit"

# Corrupted ciphertexts: a decryption error, never the plaintext and
# never a token error (which would tell the bad padding from other
# failures). One flipped bit at the start, the middle and the end.
for pos in 0 100 255; do
  cp "$T/ct" "$T/bad"
  perl -0777 -pi -e "substr(\$_, $pos, 1) ^= \"\\x01\"" "$T/bad"
  ! cmp -s "$T/ct" "$T/bad" || fail "corruption at $pos changed nothing"
  expect_error "keydctl: decrypt rsa: decryption failed" \
    "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/bad" -o "$T/out"
done
# A ciphertext made for another RSA-2048 key.
keygen rsa:2048 rsa-b 04
export_pub 04 "$T/rsa-b.pem"
oaep_sha1 "$T/rsa-b.pem" "$T/p1" "$T/ctb"
expect_error "keydctl: decrypt rsa: decryption failed" \
  "$KEYDCTL" decrypt rsa -a rsa-oaep-sha1 -i "$T/ctb" -o "$T/out"
pass "corrupted ciphertexts"
stop_keyd
pass "decrypt"
