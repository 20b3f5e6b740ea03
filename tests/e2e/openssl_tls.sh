#!/usr/bin/env bash
# OpenSSL serves TLS with keys held by keyd, unchanged: openssl s_server
# loads the private key through libp11's engine and keyd-pkcs11.so;
# openssl s_client completes each handshake and verifies the certificate
# (issued by a test CA over a request that keyd's key signed); keyd's
# audit log shows each handshake's signature with the mechanism used.
#   TLS 1.3 with ECDSA P-256; TLS 1.2 with RSA, PKCS#1 v1.5 and PSS
#   signatures (and TLS 1.2 ECDSA, TLS 1.3 RSA-PSS for good measure).
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd
p11_engine_conf
p11_ca
p11_cert sip-tls "$T/ec-cert.pem"
p11_cert sip-rsa "$T/rsa-cert.pem"
pass "certificates issued over requests signed through the engine"

# signs KEY MECH: how many successful signatures keyd audited.
signs() {
  grep -c "\"op\":\"sign\",\"key\":\"$1\",\"mech\":\"$2\",\"result\":\"ok\"" \
    "$T/audit.jsonl" || true
}

# handshake KEY CERT WANT_PROTO WANT_SIGTYPE MECH CLIENT_ARGS...
# WANT_SIGTYPE is "OLD/NEW": s_client's "Peer signature type:" names the
# signature type in OpenSSL 3.0 (Debian 12: ECDSA, RSA, RSA-PSS) and the
# TLS signature scheme from OpenSSL 3.5 on (Debian 13: ecdsa_secp256r1_sha256,
# rsa_pkcs1_sha256, rsa_pss_rsae_sha256). Either must match the whole line.
handshake() {
  local key=$1 cert=$2 proto=$3 sigtype=$4 mech=$5 port="" before i got
  shift 5
  before=$(signs "$key" "$mech")
  : > "$T/srv.log"
  with_engine 30 openssl s_server -engine pkcs11 -keyform engine \
    -key "pkcs11:token=$P11LABEL;object=$key;type=private" -cert "$cert" \
    -accept 127.0.0.1:0 -naccept 1 -www >"$T/srv.log" 2>&1 &
  local sp=$!
  for i in $(seq 1 200); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/srv.log")
    [[ -n $port ]] && break
    kill -0 "$sp" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $port ]] || { cat "$T/srv.log" >&2; fail "s_server ($key) did not start"; }
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client \
    -connect "127.0.0.1:$port" -servername localhost \
    -verify_hostname localhost -CAfile "$T/ca.pem" -verify_return_error \
    "$@" >"$T/cli.log" 2>&1 || { cat "$T/cli.log" "$T/srv.log" >&2; fail "s_client ($key $*)"; }
  wait "$sp" || { cat "$T/srv.log" >&2; fail "s_server ($key) exited with an error"; }
  grep -q "Verify return code: 0 (ok)" "$T/cli.log" || fail "certificate not verified ($key)"
  grep -q "^New, $proto, Cipher is " "$T/cli.log" || { cat "$T/cli.log" >&2; fail "not $proto ($key $*)"; }
  got=$(sed -n 's/^Peer signature type: //p' "$T/cli.log")
  [[ $got == "${sigtype%/*}" || $got == "${sigtype#*/}" ]] ||
    { grep "signature" "$T/cli.log" >&2; fail "not a $sigtype signature ($key $*): '$got'"; }
  [[ $(signs "$key" "$mech") -gt $before ]] || fail "keyd audited no $mech signature with $key"
  pass "$proto, $got signature by keyd's $key ($mech in keyd's audit log)"
}

handshake sip-tls "$T/ec-cert.pem" TLSv1.3 ECDSA/ecdsa_secp256r1_sha256 ecdsa -tls1_3
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 RSA/rsa_pkcs1_sha256 rsa-pkcs1-digestinfo \
  -tls1_2 -sigalgs RSA+SHA256
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.2 RSA-PSS/rsa_pss_rsae_sha256 rsa-pss-sha256 \
  -tls1_2 -sigalgs rsa_pss_rsae_sha256
handshake sip-tls "$T/ec-cert.pem" TLSv1.2 ECDSA/ecdsa_secp256r1_sha256 ecdsa -tls1_2
handshake sip-rsa "$T/rsa-cert.pem" TLSv1.3 RSA-PSS/rsa_pss_rsae_sha256 rsa-pss-sha256 -tls1_3

# The audit records name the s_server process and this client's name.
grep '"op":"sign","key":"sip-rsa","mech":"rsa-pss-sha256"' "$T/audit.jsonl" |
  has '"client":"root","uid":0' || fail "audit records lack the client"
pass "audit records carry the client and its credentials"
