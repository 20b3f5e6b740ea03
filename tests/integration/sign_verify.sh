#!/usr/bin/env bash
# sign_verify.sh: every signature algorithm of keydctl against the real
# keyd and a SoftHSM2 token, each signature verified by OpenSSL against
# the public key that ANOTHER program read from the token (pkcs11-tool for
# P-256 and RSA; GnuTLS's p11tool for P-384 and Ed25519, which
# pkcs11-tool 0.23 cannot export). Also: --digest mode, `keydctl pubkey`
# equal to those keys, and tampered messages that must not verify.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=sigtest
make_token $TOKEN
keygen EC:prime256v1 p256 01
keygen EC:secp384r1 p384 02
keygen rsa:2048 rsa 03
keygen EC:edwards25519 ed 04
# RFC 8032 section 7.1 TEST 1: its secret key, imported, so that keyd's
# Ed25519 signature can be compared with the RFC's byte for byte.
unhex() { perl -e 'print pack("H*", $ARGV[0])' "$1"; }
RFC8032_SK=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
RFC8032_PK=d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
RFC8032_SIG=e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b
unhex "302e020100300506032b657004220420$RFC8032_SK" |
  openssl pkey -inform DER -out "$T/rfc8032.pem"
softhsm2-util --import "$T/rfc8032.pem" --token "$TOKEN" --label edkat --id 0a \
  --pin "$PIN" > /dev/null || fail "cannot import the RFC 8032 key"
rm -f "$T/rfc8032.pem"
write_pin
write_config <<CONF
[key p256]
uri = pkcs11:token=$TOKEN;object=p256;type=private
ops = sign
[key p384]
uri = pkcs11:token=$TOKEN;object=p384;type=private
ops = sign
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = sign
[key ed]
uri = pkcs11:token=$TOKEN;object=ed;type=private
ops = sign
[key edkat]
uri = pkcs11:token=$TOKEN;object=edkat;type=private
ops = sign
[client me]
uid = $(id -u)
keys = p256, p384, rsa, ed, edkat
ops = sign
CONF
start_keyd

# The reference public keys, read from the token without keyd.
export_pub 01 "$T/p256.pem"
export_pub 03 "$T/rsa.pem"
export_pub_gnutls p384 "$T/p384.pem" || fail "p11tool cannot export p384"
export_pub_gnutls ed "$T/ed.pem" || fail "p11tool cannot export ed"
grep -q "ASN1 OID: prime256v1" <(openssl pkey -pubin -in "$T/p256.pem" -text -noout) ||
  fail "p256.pem is not a P-256 key"
grep -q "ASN1 OID: secp384r1" <(openssl pkey -pubin -in "$T/p384.pem" -text -noout) ||
  fail "p384.pem is not a P-384 key"
grep -q "ED25519 Public-Key" <(openssl pkey -pubin -in "$T/ed.pem" -text -noout) ||
  fail "ed.pem is not an Ed25519 key"
grep -q "Public-Key: (2048 bit)" <(openssl pkey -pubin -in "$T/rsa.pem" -text -noout) ||
  fail "rsa.pem is not RSA-2048"

# Messages: a short one, an empty one, one of 100 kB (hashed by keydctl).
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/m1"
: > "$T/m0"
head -c 100000 /dev/urandom > "$T/m2"
# The tampered copy differs in one bit of its last byte (an empty message
# gains a byte). perl is in every Debian (perl-base).
tamper() {
  if [[ -s $1 ]]; then perl -0777 -pe 'substr($_, -1, 1) ^= "\x01"' "$1" > "$2"
  else printf 'x' > "$2"; fi
  ! cmp -s "$1" "$2" || fail "tamper did not change $1"
}

check() { # KEY ALG PUB: sign each message; verify it, and not its tamper
  local key=$1 alg=$2 pub=$3 m out
  for m in m1 m0 m2; do
    [[ $alg == ed25519 && $m == m2 ]] && continue   # 16 KiB at most
    [[ $alg == ed25519 && $m == m0 ]] && continue   # below, on its own
    "$KEYDCTL" sign "$key" -a "$alg" -i "$T/$m" -o "$T/sig" ||
      fail "keydctl sign $key -a $alg -i $m"
    out=$(verify_sig "$alg" "$pub" "$T/$m" "$T/sig" 2>&1) ||
      fail "$alg signature by $key over $m does not verify: $out"
    [[ $out == *"Verified OK"* || $out == *"Signature Verified Successfully"* ]] ||
      fail "openssl said: $out"
    tamper "$T/$m" "$T/tampered"
    if verify_sig "$alg" "$pub" "$T/tampered" "$T/sig" >/dev/null 2>&1; then
      fail "$alg signature by $key verifies a tampered $m"
    fi
  done
  pass "$key $alg"
}

check p256 ecdsa-sha256 "$T/p256.pem"
check p256 ecdsa-sha384 "$T/p256.pem"
check p256 ecdsa-sha512 "$T/p256.pem"
check p384 ecdsa-sha384 "$T/p384.pem"
check p384 ecdsa-sha256 "$T/p384.pem"
check rsa rsa-pkcs1-sha256 "$T/rsa.pem"
check rsa rsa-pkcs1-sha384 "$T/rsa.pem"
check rsa rsa-pkcs1-sha512 "$T/rsa.pem"
check rsa rsa-pss-sha256 "$T/rsa.pem"
check rsa rsa-pss-sha384 "$T/rsa.pem"
check rsa rsa-pss-sha512 "$T/rsa.pem"
check ed ed25519 "$T/ed.pem"

# A signature made with another key of the same type does not verify:
# keyd used the key it was asked for.
keygen EC:prime256v1 p256b 05
export_pub 05 "$T/p256b.pem"
"$KEYDCTL" sign p256 -a ecdsa-sha256 -i "$T/m1" -o "$T/sig"
if verify_sig ecdsa-sha256 "$T/p256b.pem" "$T/m1" "$T/sig" >/dev/null 2>&1; then
  fail "a p256 signature verifies under another P-256 key"
fi

# RSA PKCS#1 v1.5 is deterministic: keyd's signature is byte for byte
# what OpenSSL computes for the same key... which OpenSSL cannot do without
# the private key, so compare two keyd signatures instead, and check the
# signature length is the modulus length.
"$KEYDCTL" sign rsa -a rsa-pkcs1-sha256 -i "$T/m1" -o "$T/s1"
"$KEYDCTL" sign rsa -a rsa-pkcs1-sha256 -i "$T/m1" -o "$T/s2"
cmp -s "$T/s1" "$T/s2" || fail "two PKCS#1 v1.5 signatures of one message differ"
[[ $(stat -c %s "$T/s1") -eq 256 ]] || fail "RSA-2048 signature is not 256 bytes"
# ...and PSS is randomised (salt): two signatures differ, both verify.
"$KEYDCTL" sign rsa -a rsa-pss-sha256 -i "$T/m1" -o "$T/s1"
"$KEYDCTL" sign rsa -a rsa-pss-sha256 -i "$T/m1" -o "$T/s2"
! cmp -s "$T/s1" "$T/s2" || fail "two PSS signatures are equal (no salt?)"
verify_sig rsa-pss-sha256 "$T/rsa.pem" "$T/m1" "$T/s2" >/dev/null || fail "PSS s2"
# Ed25519 is deterministic too, and 64 bytes.
"$KEYDCTL" sign ed -a ed25519 -i "$T/m1" -o "$T/s1"
"$KEYDCTL" sign ed -a ed25519 -i "$T/m1" -o "$T/s2"
cmp -s "$T/s1" "$T/s2" || fail "two Ed25519 signatures of one message differ"
[[ $(stat -c %s "$T/s1") -eq 64 ]] || fail "Ed25519 signature is not 64 bytes"
pass "determinism and sizes"

# --digest: the input is the digest, hashed by openssl here.
for spec in p256:ecdsa-sha256 p256:ecdsa-sha512 p384:ecdsa-sha384 \
    rsa:rsa-pkcs1-sha384 rsa:rsa-pss-sha512 rsa:rsa-pss-sha256; do
  key=${spec%%:*} alg=${spec#*:}
  openssl dgst "-$(sha_of "$alg")" -binary "$T/m2" > "$T/dg"
  "$KEYDCTL" sign "$key" -a "$alg" --digest -i "$T/dg" -o "$T/sig" ||
    fail "sign --digest $key $alg"
  verify_sig "$alg" "$T/$key.pem" "$T/m2" "$T/sig" >/dev/null ||
    fail "--digest $alg signature by $key does not verify over the message"
  tamper "$T/m2" "$T/tampered"
  ! verify_sig "$alg" "$T/$key.pem" "$T/tampered" "$T/sig" >/dev/null 2>&1 ||
    fail "--digest $alg verifies a tampered message"
done
# From standard input, to standard output.
openssl dgst -sha256 -binary "$T/m1" |
  "$KEYDCTL" sign p256 -a ecdsa-sha256 --digest > "$T/sig"
verify_sig ecdsa-sha256 "$T/p256.pem" "$T/m1" "$T/sig" >/dev/null ||
  fail "sign from stdin to stdout"
pass "--digest"

# keydctl pubkey is the key the token holds, as the other programs read it.
for key in p256 p384 rsa ed; do
  "$KEYDCTL" pubkey "$key" -o "$T/kp.pem"
  openssl pkey -pubin -in "$T/kp.pem" -outform DER -out "$T/kp.der"
  openssl pkey -pubin -in "$T/$key.pem" -outform DER -out "$T/ref.der"
  cmp -s "$T/kp.der" "$T/ref.der" || fail "keydctl pubkey $key differs from the token's key"
  "$KEYDCTL" pubkey "$key" | cmp -s - "$T/kp.pem" || fail "pubkey to stdout differs"
done
! cmp -s "$T/p256.pem" "$T/p256b.pem" || fail "two P-256 keys are equal"
pass "pubkey"

# Refusals, with the exact lines keydctl prints.
s=$T/run/keyd.sock
expect_error_rc 2 "keydctl: ed25519 signs the message itself; drop --digest; run keydctl --help" \
  "$KEYDCTL" sign ed -a ed25519 --digest -i "$T/m1"
openssl dgst -sha256 -binary "$T/m1" > "$T/dg"
expect_error "keydctl: sign p256: bad input: a SHA384 digest has 48 bytes; the input has 32 (without --digest keydctl hashes the input)" \
  "$KEYDCTL" sign p256 -a ecdsa-sha384 --digest -i "$T/dg"
expect_error "keydctl: sign p256: algorithm does not fit the key: rsa-pss-sha256 does not fit key 'p256' (ec-p256)" \
  "$KEYDCTL" sign p256 -a rsa-pss-sha256 -i "$T/m1"
expect_error "keydctl: sign rsa: algorithm does not fit the key: ecdsa does not fit key 'rsa' (rsa)" \
  "$KEYDCTL" sign rsa -a ecdsa-sha256 -i "$T/m1"
expect_error "keydctl: sign ed: algorithm does not fit the key: rsa-pkcs1-sha256 does not fit key 'ed' (ed25519)" \
  "$KEYDCTL" sign ed -a rsa-pkcs1-sha256 -i "$T/m1"
expect_error "keydctl: sign p384: algorithm does not fit the key: ed25519 does not fit key 'p384' (ec-p384)" \
  "$KEYDCTL" sign p384 -a ed25519 -i "$T/m1"
expect_error "keydctl: sign nope: unknown key: no key named 'nope'" \
  "$KEYDCTL" sign nope -a ecdsa-sha256 -i "$T/m1"
head -c 16385 /dev/zero > "$T/big"
expect_error "keydctl: sign ed: input too large: $T/big holds more than 16384 bytes, the most this command takes" \
  "$KEYDCTL" sign ed -a ed25519 -i "$T/big"
# Exactly 16384 bytes is fine for Ed25519, and verifies.
head -c 16384 /dev/urandom > "$T/big"
"$KEYDCTL" sign ed -a ed25519 -i "$T/big" -o "$T/sig"
verify_sig ed25519 "$T/ed.pem" "$T/big" "$T/sig" >/dev/null || fail "16 KiB Ed25519"
pass "refusals"

# RFC 8032 TEST 1: the empty message, signed with the RFC's key, gives
# the RFC's signature (OpenSSL 3.0's pkeyutl cannot take an empty input,
# so the known answer is the judge here), and keyd's public key for it is
# the RFC's.
"$KEYDCTL" pubkey edkat | openssl pkey -pubin -outform DER | tail -c 32 > "$T/kat.pub"
cmp -s "$T/kat.pub" <(unhex "$RFC8032_PK") || fail "keydctl pubkey edkat is not RFC 8032's key"
"$KEYDCTL" sign edkat -a ed25519 -i "$T/m0" -o "$T/sig" ||
  fail "Ed25519 signature of the empty message"
cmp -s "$T/sig" <(unhex "$RFC8032_SIG") ||
  fail "Ed25519 signature of the empty message is not RFC 8032's: $(od -An -v -tx1 "$T/sig" | tr -d ' \n')"
pass "Ed25519 known answer (RFC 8032 test 1, the empty message)"

# Every signature above is in the audit log, with its mechanism.
n=$(grep -c '"op":"sign","key":"rsa","mech":"rsa-pss-sha512","result":"ok"' "$T/audit.jsonl")
[[ $n -eq 4 ]] || fail "audit log has $n rsa-pss-sha512 signatures, want 4"
stop_keyd
pass "sign_verify"
