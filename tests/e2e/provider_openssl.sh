#!/usr/bin/env bash
# OpenSSL 3's command-line tools use keys held by keyd through keyd's own
# provider, keyd.so (client/provider/, docs/provider.md), by keyd: URIs.
# Runs on Debian 12 (OpenSSL 3.0) and 13 (OpenSSL 3.5). It checks:
#   - openssl storeutl lists the private key, the public key and nothing
#     else for keyd:NAME, and the public key (openssl pkey -pubout) equals
#     the token's own, exported by pkcs11-tool (EC, RSA) or p11tool
#     (Ed25519); -provider keyd finds keyd.so by name (OPENSSL_MODULES);
#   - openssl req -x509 with keyd's EC, RSA and Ed25519 keys: the
#     certificates verify and hold the token's public keys;
#   - openssl s_server -key keyd:NAME serves TLS 1.3 with ECDSA and TLS 1.2
#     with RSA PKCS#1 v1.5 and PSS; s_client -verify_return_error completes
#     each handshake and data goes both ways;
#   - mutual TLS: s_client -key keyd:NAME -cert ... authenticates to an
#     s_server that requires and verifies a client certificate;
#   - openssl pkeyutl -decrypt with OAEP (SHA-1, what SoftHSM2 does);
#     OAEP with SHA-256 is refused before keyd is asked;
#   - the store gives the certificate the token holds for a key;
#   - errors: a wrong key name, an operation keyd's policy refuses, and keyd
#     down each fail at once with keyd's reason in OpenSSL's error;
#   - keyd's audit log shows every operation, all by this client.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

PROVDIR=$KEYD_BUILD_DIR/client/provider
[[ -f $PROVDIR/keyd.so ]] || fail "$PROVDIR/keyd.so is not built (target keyd-provider)"

p11_keys
start_keyd

# The provider's OpenSSL config, as docs/provider.md gives it.
keyd_provider_cnf "$T/provider.cnf"

# with_provider SECONDS CMD...: CMD with the provider's config, stopped
# after SECONDS.
with_provider() {
  local secs=$1; shift
  timeout "$secs" "${EXT[@]}" env OPENSSL_CONF="$T/provider.cnf" "$@"
}

reverse() {
  local s=$1 r="" i
  for ((i = ${#s} - 1; i >= 0; i--)); do r+=${s:i:1}; done
  printf '%s\n' "$r"
}

signs() {
  grep -c "\"op\":\"sign\",\"key\":\"$1\",\"mech\":\"$2\",\"result\":\"ok\"" \
    "$T/audit.jsonl" || true
}
decrypts() {
  grep -c "\"op\":\"decrypt\",\"key\":\"$1\",\"mech\":\"$2\",\"result\":\"ok\"" \
    "$T/audit.jsonl" || true
}

# --- storeutl: for keyd:sip-tls, a private key and a public key.
with_provider 30 openssl storeutl -text keyd:sip-tls >"$T/store.out" 2>"$T/store.err" ||
  { cat "$T/store.err" >&2; fail "openssl storeutl keyd:sip-tls"; }
grep -q '^Total found: 2$' "$T/store.out" || { cat "$T/store.out" >&2; fail "storeutl found other than 2 objects"; }
grep -Eq '^0: (Pkey|Private key)$' "$T/store.out" || { cat "$T/store.out" >&2; fail "storeutl: no private key first"; }
grep -q '^1: Public key$' "$T/store.out" || { cat "$T/store.out" >&2; fail "storeutl: no public key second"; }
pass "openssl storeutl keyd:sip-tls gives its private and public key"

# --- public keys, against the token's own.
for k in "sip-tls ec" "sip-rsa rsa" "sip-ed ed"; do
  read -r name short <<< "$k"
  with_provider 30 openssl pkey -in "keyd:$name" -pubout -out "$T/prov-$short.pem" 2>"$T/pkey.err" ||
    { cat "$T/pkey.err" >&2; fail "openssl pkey -in keyd:$name -pubout"; }
  cmp -s "$T/prov-$short.pem" "$T/$short.pem" ||
    fail "the public key of keyd:$name differs from the token's"
done
# By name from the modules directory, with no config file.
OPENSSL_MODULES=$PROVDIR timeout 30 "${EXT[@]}" env OPENSSL_CONF=/dev/null openssl pkey \
  -provider keyd -provider default -in keyd:sip-tls -pubout -out "$T/byname.pem" 2>"$T/pkey.err" ||
  { cat "$T/pkey.err" >&2; fail "openssl pkey -provider keyd"; }
cmp -s "$T/byname.pem" "$T/ec.pem" || fail "-provider keyd: another public key"
pass "public keys of keyd:NAME equal the token's (EC, RSA, Ed25519; config and -provider keyd)"

# --- self-signed certificates.
selfsign() {
  local key=$1 mech=$2 out=$3 before
  before=$(signs "$key" "$mech")
  with_provider 30 openssl req -new -x509 -key "keyd:$key" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -days 2 -out "$out" >"$T/req.log" 2>&1 ||
    { cat "$T/req.log" >&2; fail "openssl req -x509 -key keyd:$key"; }
  openssl verify -CAfile "$out" "$out" >"$T/verify.log" 2>&1 ||
    { cat "$T/verify.log" >&2; fail "the self-signed certificate of $key does not verify"; }
  openssl x509 -in "$out" -noout -pubkey > "$T/cert-pub.pem"
  cmp -s "$T/cert-pub.pem" "$4" || fail "the certificate of $key holds another key"
  [[ $(signs "$key" "$mech") -gt $before ]] || fail "keyd audited no $mech signature with $key"
  pass "openssl req -x509 -key keyd:$key: verified ($mech in keyd's audit log)"
}
selfsign sip-tls ecdsa "$T/ec-cert.pem" "$T/ec.pem"
selfsign sip-rsa rsa-pkcs1-sha256 "$T/rsa-cert.pem" "$T/rsa.pem"
selfsign sip-ed ed25519 "$T/ed-cert.pem" "$T/ed.pem"

# --- TLS through s_server -key keyd:NAME.
# handshake KEY CERT PROTO SIGTYPE MECH ARGS...: ARGS go to both ends.
# SIGTYPE is "OLD/NEW": OpenSSL 3.0 names the signature type, 3.5 the TLS
# scheme. CLIENT_EXTRA (an array) goes to s_client only, SERVER_EXTRA to
# s_server only.
CLIENT_EXTRA=() SERVER_EXTRA=()
handshake() {
  local key=$1 cert=$2 proto=$3 sigtype=$4 mech=$5 port="" before i got msg
  shift 5
  before=$(signs "$key" "$mech")
  msg="keyd $key $proto $$ $RANDOM"
  : > "$T/srv.log"
  with_provider 30 openssl s_server -key "keyd:$key" -cert "$cert" \
    -accept 127.0.0.1:0 -naccept 1 -rev "${SERVER_EXTRA[@]}" "$@" </dev/null >"$T/srv.log" 2>&1 &
  local sp=$!
  for i in $(seq 1 200); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/srv.log")
    [[ -n $port ]] && break
    kill -0 "$sp" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $port ]] || { wait "$sp" || true; cat "$T/srv.log" >&2; fail "s_server ($key $*) did not start"; }
  printf '%s\nCLOSE\n' "$msg" | with_provider 20 openssl s_client \
    -connect "127.0.0.1:$port" -servername localhost \
    -verify_hostname localhost -CAfile "$cert" -verify_return_error -ign_eof \
    "${CLIENT_EXTRA[@]}" "$@" >"$T/cli.log" 2>&1 ||
    { cat "$T/cli.log" "$T/srv.log" >&2; fail "s_client ($key $*)"; }
  wait "$sp" || { cat "$T/srv.log" >&2; fail "s_server ($key) exited with an error"; }
  grep -q "^ *Verify return code: 0 (ok)\$" "$T/cli.log" || { cat "$T/cli.log" >&2; fail "certificate not verified ($key)"; }
  grep -q "^New, $proto, Cipher is " "$T/cli.log" || { cat "$T/cli.log" >&2; fail "not $proto ($key $*)"; }
  got=$(sed -n 's/^Peer signature type: //p' "$T/cli.log")
  [[ $got == "${sigtype%/*}" || $got == "${sigtype#*/}" ]] ||
    { grep "signature" "$T/cli.log" >&2; fail "not a $sigtype signature ($key $*): '$got'"; }
  grep -qxF "$(reverse "$msg")" "$T/cli.log" ||
    { cat "$T/cli.log" >&2; fail "s_client did not get its line back reversed ($key $*)"; }
  [[ $(signs "$key" "$mech") -gt $before ]] || fail "keyd audited no $mech signature with $key"
  pass "$proto, $got signature by keyd:$key ($mech in keyd's audit log), data both ways"
}
handshake sip-tls "$T/ec-cert.pem" TLSv1.3 ECDSA/ecdsa_secp256r1_sha256 ecdsa \
  -tls1_3 -sigalgs ecdsa_secp256r1_sha256
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 RSA/rsa_pkcs1_sha256 rsa-pkcs1-sha256 \
  -tls1_2 -sigalgs rsa_pkcs1_sha256
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 RSA-PSS/rsa_pss_rsae_sha256 rsa-pss-sha256 \
  -tls1_2 -sigalgs rsa_pss_rsae_sha256

# --- mutual TLS: the client's key in keyd (sip-rsa, RSA-PSS in TLS 1.3's
# CertificateVerify), the server's a plain PEM key; the server requires
# and verifies the client's certificate.
openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$T/srv.key" -out "$T/srv.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -days 2 >/dev/null 2>&1 || fail "cannot make the server's PEM key"
before=$(signs sip-rsa rsa-pss-sha256)
: > "$T/srv.log"
timeout 30 openssl s_server -key "$T/srv.key" -cert "$T/srv.pem" -accept 127.0.0.1:0 \
  -naccept 1 -rev -Verify 1 -verify_return_error -CAfile "$T/rsa-cert.pem" -tls1_3 \
  </dev/null >"$T/srv.log" 2>&1 &
sp=$!
port=
for i in $(seq 1 200); do
  port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/srv.log")
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { cat "$T/srv.log" >&2; fail "the mutual-TLS s_server did not start"; }
printf 'mutual %s\nCLOSE\n' "$$" | with_provider 20 openssl s_client -connect "127.0.0.1:$port" \
  -servername localhost -CAfile "$T/srv.pem" -verify_return_error -ign_eof \
  -key keyd:sip-rsa -cert "$T/rsa-cert.pem" >"$T/cli.log" 2>&1 ||
  { cat "$T/cli.log" "$T/srv.log" >&2; fail "s_client -key keyd:sip-rsa (mutual TLS)"; }
wait "$sp" || { cat "$T/srv.log" >&2; fail "the mutual-TLS s_server exited with an error"; }
# s_server names the client's certificate ("Peer certificate:" in 3.0,
# "Client certificate" and its subject from 3.2 on).
grep -Eq '^(Peer certificate: |subject=).*CN *= *localhost' "$T/srv.log" ||
  { cat "$T/srv.log" >&2; fail "s_server got no client certificate"; }
grep -qF "$(reverse "mutual $$")" "$T/cli.log" || { cat "$T/cli.log" >&2; fail "no data back over mutual TLS"; }
[[ $(signs sip-rsa rsa-pss-sha256) -gt $before ]] || fail "keyd audited no client signature for mutual TLS"
pass "mutual TLS 1.3: s_client -key keyd:sip-rsa authenticated to a server that requires it"

# --- RSA-OAEP: encrypted here, decrypted by keyd.
OAEP=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1)
head -c 64 /dev/urandom > "$T/secret"
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" "${OAEP[@]}" -in "$T/secret" \
  -out "$T/secret.enc" || fail "openssl pkeyutl -encrypt"
before=$(decrypts sip-rsa rsa-oaep-sha1)
with_provider 30 openssl pkeyutl -decrypt -inkey keyd:sip-rsa "${OAEP[@]}" \
  -in "$T/secret.enc" -out "$T/secret.dec" 2>"$T/dec.err" ||
  { cat "$T/dec.err" >&2; fail "openssl pkeyutl -decrypt -inkey keyd:sip-rsa"; }
cmp -s "$T/secret" "$T/secret.dec" || fail "the OAEP decryption through the provider is wrong"
[[ $(decrypts sip-rsa rsa-oaep-sha1) -gt $before ]] || fail "keyd audited no rsa-oaep-sha1 decryption"
pass "RSA-OAEP (SHA-1) decrypted by keyd:sip-rsa (in keyd's audit log)"

OAEP256=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256)
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" "${OAEP256[@]}" -in "$T/secret" \
  -out "$T/secret256.enc" || fail "openssl pkeyutl -encrypt (OAEP SHA-256)"
before=$(grep -c '"op":"decrypt"' "$T/audit.jsonl" || true)
if with_provider 30 openssl pkeyutl -decrypt -inkey keyd:sip-rsa "${OAEP256[@]}" \
  -in "$T/secret256.enc" -out "$T/secret256.dec" 2>"$T/dec.err"; then
  fail "OAEP with SHA-256 decrypted, but the token does OAEP with SHA-1 only"
fi
grep -q "keyd does not decrypt this OAEP variant with sip-rsa" "$T/dec.err" ||
  { cat "$T/dec.err" >&2; fail "OAEP with SHA-256: not refused with the provider's reason"; }
[[ $(grep -c '"op":"decrypt"' "$T/audit.jsonl" || true) -eq $before ]] ||
  fail "OAEP with SHA-256 reached keyd"
pass "RSA-OAEP with SHA-256, which the token lacks, refused before keyd"

# --- public-key operations with keyd's key objects: done here by the
# default provider, never asked of keyd. A signature by keyd verifies
# through the key object (dgst -prverify) and against the token's public
# key; data encrypted through the key object decrypts (by keyd).
echo "verify me $$" > "$T/vmsg"
with_provider 30 openssl dgst -sha256 -sign keyd:sip-tls -out "$T/vmsg.sig" "$T/vmsg" ||
  fail "openssl dgst -sign keyd:sip-tls"
before=$(wc -l < "$T/audit.jsonl")
with_provider 30 openssl dgst -sha256 -prverify keyd:sip-tls -signature "$T/vmsg.sig" "$T/vmsg" \
  >"$T/v.out" 2>&1 || { cat "$T/v.out" >&2; fail "openssl dgst -prverify keyd:sip-tls"; }
grep -q '^Verified OK$' "$T/v.out" || fail "the signature did not verify through the key object"
openssl dgst -sha256 -verify "$T/ec.pem" -signature "$T/vmsg.sig" "$T/vmsg" >/dev/null ||
  fail "keyd's signature does not verify with the token's public key"
echo "another message" > "$T/vmsg2"
if with_provider 30 openssl dgst -sha256 -prverify keyd:sip-tls -signature "$T/vmsg.sig" \
  "$T/vmsg2" >/dev/null 2>&1; then
  fail "a signature over another message verified through the key object"
fi
with_provider 30 openssl pkeyutl -encrypt -inkey keyd:sip-rsa "${OAEP[@]}" -in "$T/secret" \
  -out "$T/secret2.enc" || fail "openssl pkeyutl -encrypt -inkey keyd:sip-rsa"
[[ $(grep -c '"op":"\(sign\|decrypt\)"' <(tail -n +"$((before + 1))" "$T/audit.jsonl") || true) -eq 0 ]] ||
  fail "a public-key operation reached keyd"
with_provider 30 openssl pkeyutl -decrypt -inkey keyd:sip-rsa "${OAEP[@]}" \
  -in "$T/secret2.enc" -out "$T/secret2.dec" || fail "cannot decrypt what the key object encrypted"
cmp -s "$T/secret" "$T/secret2.dec" || fail "encryption through the key object gave another plaintext"
pass "verification and encryption through keyd's key objects, by the default provider (nothing asked of keyd)"

# --- errors, each at once and with keyd's reason.
echo hello > "$T/msg"
expect_fail "no key named 'no-such-key' for this client" \
  with_provider 30 openssl pkey -in keyd:no-such-key -pubout
expect_fail "is not a keyd: URI" with_provider 30 openssl pkey -in keyd: -pubout
# sign-only-rsa may sign, not decrypt: keyd's policy refuses, and says so.
openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -in "$T/secret" -out "$T/x.enc" 2>/dev/null || true
expect_fail "keyd does not decrypt PKCS#1 v1.5 with sign-only-rsa" \
  with_provider 30 openssl pkeyutl -decrypt -inkey keyd:sign-only-rsa -in "$T/x.enc"
# PSS parameters keyd cannot honour: refused when set, not at the end.
expect_fail "keyd uses a salt as long as the digest" \
  with_provider 30 openssl dgst -sha256 -sign keyd:sip-rsa -sigopt rsa_padding_mode:pss \
  -sigopt rsa_pss_saltlen:max -out "$T/x.sig" "$T/msg"
[[ $(grep -c '"op":"sign","key":"sip-rsa".*"result":"[^o]' "$T/audit.jsonl" || true) -eq 0 ]] ||
  fail "a refused PSS variant reached keyd"
# A policy refusal by keyd itself: sip-tls may not decrypt (EC), and
# srtp-kek is no OpenSSL key.
expect_fail "is an AES key" with_provider 30 openssl pkey -in keyd:srtp-kek -pubout
pass "a wrong key name, a bad URI, refused decryption and PSS variants fail with keyd's reason"

# A socket that accepts and never answers (a hung keyd): the request
# fails after the client config's timeout_ms, saying so; never a hang.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(8)
print("listening", flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$T/stall.sock" > "$T/stall.out" 2>&1 &
STALL_PID=$!
wait_for "$T/stall.out" listening
printf 'timeout_ms = 1500\n' >> "$T/pkcs11.conf"
start=$SECONDS
expect_fail "timed out\|timeout" with_provider 30 openssl pkey -in "keyd:sip-tls?socket=$T/stall.sock" -pubout
kill "$STALL_PID"; wait "$STALL_PID" 2>/dev/null || true
sed -i '/^timeout_ms = 1500$/d' "$T/pkcs11.conf"
((SECONDS - start < 10)) || fail "a stalled keyd socket held openssl for $((SECONDS - start)) s"
pass "a keyd that never answers: openssl fails after the configured timeout ($((SECONDS - start)) s), no hang"

# Every operation came from this client, and all but the refusals above
# succeeded.
grep -E '"op":"(sign|decrypt)"' "$T/audit.jsonl" > "$T/ops.jsonl" || true
if grep -v '"client":"root","uid":0,' "$T/ops.jsonl" >&2; then
  fail "an operation in the audit log is not by this client"
fi
if grep -v '"result":"ok"' "$T/ops.jsonl" >&2; then
  fail "keyd refused or failed a signature or decryption"
fi
pass "the audit log holds only this client's successful signatures and decryptions ($(wc -l < "$T/ops.jsonl"))"

# keyd's policy refuses: the same client without the sign op. keyd
# decides (the provider asks), and its reason reaches OpenSSL's error.
# Meanwhile the token gets a certificate for sip-rsa (the self-signed one
# made above), which the store must then give with the key.
stop_keyd
p11_import_cert "$T/rsa-cert.pem" 02 sip-rsa-cert
sed -i 's/^ops = sign, decrypt, srtp-new, srtp-open$/ops = decrypt, srtp-new, srtp-open/' "$T/keyd.conf"
grep -q '^ops = decrypt, srtp-new, srtp-open$' "$T/keyd.conf" || fail "cannot take the sign op away"
start_keyd
expect_fail "keyd: sign with sip-tls: permission denied by policy" \
  with_provider 30 openssl dgst -sha256 -sign keyd:sip-tls -out "$T/x.sig" "$T/msg"
grep '"op":"sign","key":"sip-tls"' "$T/audit.jsonl" | tail -n 1 | has '"result":"permission denied by policy"' ||
  { tail -n 3 "$T/audit.jsonl" >&2; fail "keyd did not audit the refused signature"; }
pass "a signature keyd's policy refuses fails with keyd's reason, audited as denied"

with_provider 30 openssl storeutl -text keyd:sip-rsa >"$T/store.out" 2>"$T/store.err" ||
  { cat "$T/store.err" >&2; fail "openssl storeutl keyd:sip-rsa"; }
grep -q '^Total found: 3$' "$T/store.out" || { cat "$T/store.out" >&2; fail "storeutl keyd:sip-rsa: not 3 objects"; }
grep -q '^2: Certificate$' "$T/store.out" || { cat "$T/store.out" >&2; fail "storeutl keyd:sip-rsa: no certificate third"; }
with_provider 30 openssl storeutl -certs keyd:sip-rsa 2>/dev/null |
  openssl x509 -outform DER -out "$T/store-cert.der" || fail "no certificate from keyd:sip-rsa"
openssl x509 -in "$T/rsa-cert.pem" -outform DER -out "$T/rsa-cert.der"
cmp -s "$T/store-cert.der" "$T/rsa-cert.der" || fail "keyd:sip-rsa gave another certificate than the token's"
pass "keyd:sip-rsa gives the private key, the public key and the token's certificate for it"

stop_keyd
start=$SECONDS
expect_fail "keyd: cannot connect" with_provider 30 openssl pkey -in keyd:sip-tls -pubout
((SECONDS - start < 10)) || fail "with keyd down, openssl took $((SECONDS - start)) s to fail"
pass "keyd down: openssl fails at once, saying it cannot connect to keyd"

