#!/usr/bin/env bash
# OpenSSL 3 uses keys held by keyd through pkcs11-provider (Debian 13's
# package pkcs11-provider), with keyd-pkcs11.so as its pkcs11-module-path
# and no engine: the OpenSSL config below is docs/pkcs11.md's. Through
# PKCS#11 URIs given straight to the openssl commands it
#   - lists keyd's keys (openssl storeutl -keys);
#   - exports public keys, equal to `keydctl pubkey`'s;
#   - makes self-signed certificates (openssl req -x509) and a certificate
#     request (openssl req -new), verified;
#   - serves TLS 1.3 with ECDSA P-256 and TLS 1.2 with RSA, PKCS#1 v1.5 and
#     PSS signatures (openssl s_server -key 'pkcs11:...'); openssl s_client
#     -verify_return_error trusts the self-signed certificate, and data goes
#     both ways (s_server -rev sends back each line reversed);
#   - decrypts RSA-OAEP (SHA-1, as SoftHSM2 does it) with openssl pkeyutl,
#     and refuses OAEP with SHA-256 before keyd is asked.
# keyd's audit log must show each signature with its key and mechanism, and
# the decryption. Skipped (77) where pkcs11-provider is not installed:
# Debian 12 has no package of it (its OpenSSL 3.0 is served by libp11's
# engine, tests/e2e/openssl_tls.sh).
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

MODULESDIR=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
PROVIDER=$MODULESDIR/pkcs11.so
if [[ -z $MODULESDIR || ! -f $PROVIDER ]]; then
  echo "SKIP: pkcs11-provider is not installed (no $PROVIDER; Debian 13's package pkcs11-provider, Debian 12 has none)"
  exit 77
fi

p11_keys
start_keyd

# The provider's OpenSSL config: OpenSSL's default provider and
# pkcs11-provider, whose PKCS#11 module is keyd-pkcs11.so. No PIN: the
# module has a protected authentication path and takes a login without one.
# The [req] section only lets openssl req run without a system openssl.cnf.
cat > "$T/provider.cnf" <<CNF
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect

[default_sect]
activate = 1

[pkcs11_sect]
module = $PROVIDER
pkcs11-module-path = $MODULE
activate = 1

[req]
distinguished_name = dn
[dn]
CNF

# with_provider SECONDS CMD...: CMD with the provider's config, stopped
# after SECONDS.
with_provider() {
  local secs=$1; shift
  timeout "$secs" "${EXT[@]}" env OPENSSL_CONF="$T/provider.cnf" "$@"
}

# reverse STRING: STRING backwards (rev(1) is not in a minimal Debian).
reverse() {
  local s=$1 r="" i
  for ((i = ${#s} - 1; i >= 0; i--)); do r+=${s:i:1}; done
  printf '%s\n' "$r"
}

uri() { printf 'pkcs11:token=%s;object=%s;type=%s' "$P11LABEL" "$1" "$2"; }

# signs KEY MECH: how many successful signatures keyd audited.
signs() {
  grep -c "\"op\":\"sign\",\"key\":\"$1\",\"mech\":\"$2\",\"result\":\"ok\"" \
    "$T/audit.jsonl" || true
}
# decrypts KEY MECH: the same for decryptions.
decrypts() {
  grep -c "\"op\":\"decrypt\",\"key\":\"$1\",\"mech\":\"$2\",\"result\":\"ok\"" \
    "$T/audit.jsonl" || true
}

# --- storeutl: the private keys keyd lets this client use, each by its
# label and CKA_ID, and nothing else.
with_provider 30 openssl storeutl -keys -text "pkcs11:token=$P11LABEL;type=private" \
  >"$T/store.out" 2>"$T/store.err" ||
  { cat "$T/store.err" >&2; fail "openssl storeutl -keys"; }
for k in "sip-tls 01 EC 256" "sip-rsa 02 RSA 2048" "sip-ed 03 ED25519 256" \
  "sign-only-rsa 05 RSA 2048"; do
  read -r name id type bits <<< "$k"
  grep -q "^URI pkcs11:.*token=$P11LABEL;id=%$id;object=$name;type=private\$" "$T/store.out" ||
    { cat "$T/store.out" >&2; fail "storeutl did not list $name (id $id)"; }
  grep -A2 "^PKCS11 $type Private Key ($bits bits)\$" "$T/store.out" |
    has "object=$name;" || { cat "$T/store.out" >&2; fail "storeutl: $name is not $type $bits"; }
done
grep -q '^Total found: 4$' "$T/store.out" ||
  { cat "$T/store.out" >&2; fail "storeutl found other than 4 keys"; }
grep -q 'srtp-kek' "$T/store.out" && fail "storeutl listed the SRTP KEK"
pass "openssl storeutl lists keyd's four private keys through pkcs11-provider"

# --- the public keys, as the provider exports them, against keydctl's.
for k in "sip-tls ec" "sip-rsa rsa"; do
  read -r name short <<< "$k"
  timeout 30 "$KEYDCTL" pubkey "$name" -o "$T/keyd-$short.pem" || fail "keydctl pubkey $name"
  with_provider 30 openssl pkey -pubin -in "$(uri "$name" public)" -pubout \
    -out "$T/prov-$short.pem" 2>"$T/pkey.err" ||
    { cat "$T/pkey.err" >&2; fail "openssl pkey -pubin -in $(uri "$name" public)"; }
  cmp -s "$T/prov-$short.pem" "$T/keyd-$short.pem" ||
    fail "the public key of $name through the provider differs from keydctl pubkey's"
  cmp -s "$T/prov-$short.pem" "$T/$short.pem" ||
    fail "the public key of $name through the provider differs from the token's"
done
pass "public keys exported through the provider equal keydctl pubkey's"

# --- self-signed certificates, CN and DNS name localhost.
# selfsign KEY MECH OUT.pem
selfsign() {
  local key=$1 mech=$2 out=$3 before
  before=$(signs "$key" "$mech")
  with_provider 30 openssl req -new -x509 -key "$(uri "$key" private)" \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 \
    -out "$out" >"$T/req.log" 2>&1 ||
    { cat "$T/req.log" >&2; fail "openssl req -x509 -key $(uri "$key" private)"; }
  openssl verify -CAfile "$out" -purpose sslserver "$out" >"$T/verify.log" 2>&1 ||
    { cat "$T/verify.log" >&2; fail "the self-signed certificate of $key does not verify"; }
  openssl x509 -in "$out" -noout -pubkey > "$T/cert-pub.pem" ||
    fail "no public key in the certificate of $key"
  timeout 30 "$KEYDCTL" pubkey "$key" -o "$T/key-pub.pem" || fail "keydctl pubkey $key"
  cmp -s "$T/cert-pub.pem" "$T/key-pub.pem" || fail "the certificate of $key holds another key"
  [[ $(signs "$key" "$mech") -gt $before ]] ||
    fail "keyd audited no $mech signature with $key for openssl req"
  pass "self-signed certificate made with keyd's $key ($mech in keyd's audit log), verified"
}
selfsign sip-tls ecdsa "$T/ec-cert.pem"
selfsign sip-rsa rsa-pkcs1-sha256 "$T/rsa-cert.pem"

# --- a certificate request for a CA, signed by keyd's key.
before=$(signs sip-tls ecdsa)
with_provider 30 openssl req -new -key "$(uri sip-tls private)" -subj /CN=localhost \
  -out "$T/ec.csr" >"$T/req.log" 2>&1 ||
  { cat "$T/req.log" >&2; fail "openssl req -new -key $(uri sip-tls private)"; }
openssl req -in "$T/ec.csr" -noout -verify >"$T/verify.log" 2>&1 ||
  { cat "$T/verify.log" >&2; fail "the request signed through the provider does not verify"; }
openssl req -in "$T/ec.csr" -noout -pubkey > "$T/csr-pub.pem" || fail "no public key in the request"
cmp -s "$T/csr-pub.pem" "$T/keyd-ec.pem" || fail "the request holds another key than sip-tls"
[[ $(signs sip-tls ecdsa) -gt $before ]] || fail "keyd audited no ecdsa signature for openssl req -new"
pass "certificate request signed by keyd's sip-tls (ecdsa in keyd's audit log), verified"

# --- TLS through s_server -key 'pkcs11:...'.
# handshake KEY CERT PROTO SIGTYPE MECH ARGS...: ARGS go to both s_server
# and s_client (the protocol version, -sigalgs). s_client must verify the
# server against the self-signed certificate, negotiate PROTO with a
# SIGTYPE signature (a TLS signature scheme, as OpenSSL 3.5 names it), send
# a line and get it back reversed; keyd must audit a new MECH signature.
handshake() {
  local key=$1 cert=$2 proto=$3 sigtype=$4 mech=$5 port="" before i got msg
  shift 5
  before=$(signs "$key" "$mech")
  msg="keyd $key $proto $sigtype $$ $RANDOM"
  : > "$T/srv.log"
  with_provider 30 openssl s_server -key "$(uri "$key" private)" -cert "$cert" \
    -accept 127.0.0.1:0 -naccept 1 -rev "$@" </dev/null >"$T/srv.log" 2>&1 &
  local sp=$!
  for i in $(seq 1 200); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/srv.log")
    [[ -n $port ]] && break
    kill -0 "$sp" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $port ]] ||
    { wait "$sp" || true; cat "$T/srv.log" >&2; fail "s_server ($key $*) did not start"; }
  # -ign_eof: s_client waits for the server's reply and close (CLOSE
  # ends s_server -rev's connection) instead of hanging up at the end of
  # its input.
  printf '%s\nCLOSE\n' "$msg" | timeout 20 openssl s_client \
    -connect "127.0.0.1:$port" -servername localhost \
    -verify_hostname localhost -CAfile "$cert" -verify_return_error -ign_eof \
    "$@" >"$T/cli.log" 2>&1 ||
    { cat "$T/cli.log" "$T/srv.log" >&2; fail "s_client ($key $*)"; }
  wait "$sp" || { cat "$T/srv.log" >&2; fail "s_server ($key) exited with an error"; }
  grep -q "^ *Verify return code: 0 (ok)\$" "$T/cli.log" ||
    { cat "$T/cli.log" >&2; fail "certificate not verified ($key)"; }
  grep -q "^New, $proto, Cipher is " "$T/cli.log" ||
    { cat "$T/cli.log" >&2; fail "not $proto ($key $*)"; }
  got=$(sed -n 's/^Peer signature type: //p' "$T/cli.log")
  [[ $got == "$sigtype" ]] ||
    { grep "signature" "$T/cli.log" >&2; fail "not a $sigtype signature ($key $*): '$got'"; }
  grep -qxF "$(reverse "$msg")" "$T/cli.log" ||
    { cat "$T/cli.log" >&2; fail "s_client did not get its line back reversed ($key $*)"; }
  [[ $(signs "$key" "$mech") -gt $before ]] || fail "keyd audited no $mech signature with $key"
  pass "$proto, $got signature by keyd's $key ($mech in keyd's audit log), data both ways"
}

handshake sip-tls "$T/ec-cert.pem" TLSv1.3 ecdsa_secp256r1_sha256 ecdsa \
  -tls1_3 -sigalgs ecdsa_secp256r1_sha256
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 rsa_pkcs1_sha256 rsa-pkcs1-sha256 \
  -tls1_2 -sigalgs rsa_pkcs1_sha256
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 rsa_pss_rsae_sha256 rsa-pss-sha256 \
  -tls1_2 -sigalgs rsa_pss_rsae_sha256

# --- RSA-OAEP: encrypted here with the public key, decrypted by keyd.
OAEP=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1)
head -c 64 /dev/urandom > "$T/secret"
openssl pkeyutl -encrypt -pubin -inkey "$T/keyd-rsa.pem" "${OAEP[@]}" \
  -in "$T/secret" -out "$T/secret.enc" || fail "openssl pkeyutl -encrypt"
before=$(decrypts sip-rsa rsa-oaep-sha1)
with_provider 30 openssl pkeyutl -decrypt -inkey "$(uri sip-rsa private)" "${OAEP[@]}" \
  -in "$T/secret.enc" -out "$T/secret.dec" 2>"$T/dec.err" ||
  { cat "$T/dec.err" >&2; fail "openssl pkeyutl -decrypt -inkey $(uri sip-rsa private)"; }
cmp -s "$T/secret" "$T/secret.dec" || fail "the OAEP decryption through the provider is wrong"
[[ $(decrypts sip-rsa rsa-oaep-sha1) -gt $before ]] ||
  fail "keyd audited no rsa-oaep-sha1 decryption with sip-rsa"
pass "RSA-OAEP (SHA-1) decrypted by keyd's sip-rsa through the provider (in keyd's audit log)"

# OAEP with SHA-256, which SoftHSM2 lacks: refused at C_DecryptInit
# (CKR_MECHANISM_PARAM_INVALID, which pkcs11-provider reports as an
# unsupported padding mode), so keyd is never asked.
OAEP256=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256)
openssl pkeyutl -encrypt -pubin -inkey "$T/keyd-rsa.pem" "${OAEP256[@]}" \
  -in "$T/secret" -out "$T/secret256.enc" || fail "openssl pkeyutl -encrypt (OAEP SHA-256)"
before=$(grep -c '"op":"decrypt"' "$T/audit.jsonl" || true)
if with_provider 30 openssl pkeyutl -decrypt -inkey "$(uri sip-rsa private)" "${OAEP256[@]}" \
  -in "$T/secret256.enc" -out "$T/secret256.dec" 2>"$T/dec.err"; then
  fail "OAEP with SHA-256 decrypted, but the token does OAEP with SHA-1 only"
fi
grep -q 'illegal or unsupported padding mode' "$T/dec.err" ||
  { cat "$T/dec.err" >&2; fail "OAEP with SHA-256 was not refused as an unsupported padding mode"; }
[[ $(grep -c '"op":"decrypt"' "$T/audit.jsonl" || true) -eq $before ]] ||
  fail "OAEP with SHA-256 reached keyd: it must be refused at C_DecryptInit"
pass "RSA-OAEP with SHA-256, which the token lacks, refused before keyd"

# Every signature and decryption above came from openssl processes of
# this client, and none failed.
grep -E '"op":"(sign|decrypt)"' "$T/audit.jsonl" > "$T/ops.jsonl" || true
[[ $(wc -l < "$T/ops.jsonl") -eq 7 ]] ||
  { cat "$T/ops.jsonl" >&2; fail "keyd audited other than the 6 signatures and 1 decryption made here"; }
if grep -v '"client":"root","uid":0,' "$T/ops.jsonl" >&2; then
  fail "an operation in the audit log is not by this client"
fi
if grep -v '"result":"ok"' "$T/ops.jsonl" >&2; then
  fail "keyd refused or failed a signature or decryption"
fi
pass "the audit log holds only this client's successful signatures and decryptions"
