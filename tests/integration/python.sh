#!/usr/bin/env bash
# python.sh: the Python module client/python/keyd.py (ctypes over the
# built libkeyd.so.0) against a real keyd: an ECDSA signature verified
# with the public key it reads (python3-cryptography); an SRTP key made
# and opened again; a PASSporT verified by PyJWT against the certificate
# (passport_check.py), a div PASSporT, and refusals raised as keyd.Error
# with their codes and rules.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

PY=/usr/bin/python3
"$PY" -c 'import jwt, cryptography' 2>/dev/null ||
  fail "PyJWT or python3-cryptography is missing (scripts/deps.sh)"
export PYTHONPATH=$KEYD_SOURCE_DIR/client/python
export KEYD_LIBRARY=$KEYD_BUILD_DIR/client/libkeyd.so.0
# A sanitizer build's libkeyd needs the ASan runtime loaded first in a
# Python that was not built with it.
py() {
  if [[ -n ${KEYD_P11_PRELOAD:-} ]]; then
    LD_PRELOAD=$KEYD_P11_PRELOAD ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 "$PY" "$@"
  else
    "$PY" "$@"
  fi
}

TOKEN=py
make_token $TOKEN
keygen EC:prime256v1 sip-tls 01
keygen EC:prime256v1 shaken 02
keygen AES:32 kek 03 2>/dev/null
source "$KEYD_SOURCE_DIR/tests/integration/shaken_lib.sh"
shaken_ca shaken
issue shaken "$(tnauth spc "e = EXPLICIT:0,IA5STRING:709J")" \
  "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" "$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)" "$C/shaken.csr"
X5U=https://cert.example.org/shaken.pem
write_pin
write_config <<CONF
[key sip-tls]
uri = pkcs11:token=$TOKEN;object=sip-tls;type=private
ops = sign
[key shaken]
uri = pkcs11:token=$TOKEN;object=shaken;type=private
ops = passport
x5u = $X5U
certificate = $C/shaken.pem
[key kek]
uri = pkcs11:token=$TOKEN;object=kek;type=secret-key
ops = srtp-new, srtp-open
[client me]
uid = $(id -u)
keys = sip-tls, shaken, kek
ops = sign, srtp-new, srtp-open, passport
attest_max = B
orig_tns = 1202555*
CONF
start_keyd

py - "$T/out.jws" >"$T/out" <<'PY' || fail "the Python module"
import hashlib, sys
import keyd
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

with keyd.Client() as c:
    assert c.name == "me", c.name
    msg = b"INVITE sip:bob@example.org"
    sig = c.sign("sip-tls", keyd.ECDSA_SHA256, hashlib.sha256(msg).digest())
    pub = serialization.load_der_public_key(c.pubkey("sip-tls"))
    pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    try:
        pub.verify(sig, msg + b"x", ec.ECDSA(hashes.SHA256()))
        raise SystemExit("a signature verified over another message")
    except Exception as e:
        if isinstance(e, SystemExit):
            raise
    ks, kp, blob = c.srtp_new("kek", "AEAD_AES_256_GCM", "call-1")
    assert len(ks) == 44 and kp.startswith("inline:"), (len(ks), kp)
    suite, ks2, kp2 = c.srtp_open("kek", blob, "call-1")
    assert (suite, ks2, kp2) == ("AEAD_AES_256_GCM", ks, kp)
    try:
        c.srtp_open("kek", blob, "call-2")
        raise SystemExit("srtp_open took another context")
    except keyd.Error as e:
        assert e.code == -28, e
    ident = c.passport("shaken", "B", "+1 202 555 0123", ["+13125550100"],
                       origid="3A47CCFC-3B4E-4B5A-9C4E-2A5D3F6E8B10")
    print(ident)
    with open(sys.argv[1], "w") as f:
        f.write(c.passport("shaken", "C", "19995550000", "13125550100",
                           jws=True))
    try:
        c.passport("shaken", "A", "12025550123", ["13125550100"])
        raise SystemExit("attestation A was signed for attest_max B")
    except keyd.Error as e:
        assert e.code == keyd.ERR_DENIED, e
        assert str(e) == ("permission denied by policy: attest_max: client "
                          "'me' may attest at most B, not A"), str(e)
    try:
        c.passport("shaken", "B", "1202555012X", ["13125550100"])
        raise SystemExit("a malformed TN was taken")
    except keyd.Error as e:
        assert e.code == keyd.ERR_INVALID_ARG and e.detail.startswith(
            "orig is not a telephone number"), e
    try:
        c.sign("shaken", keyd.ECDSA_SHA256, bytes(32))
        raise SystemExit("the passport key signed a digest")
    except keyd.Error as e:
        assert e.code == keyd.ERR_DENIED, e
    print(c.passport_div("shaken", "12025550199", "14085550000",
                         ["13125550100"]))
try:
    keyd.Client("/nonexistent/keyd.sock")
    raise SystemExit("connected to no socket")
except keyd.Error as e:
    assert e.code == -17, e
PY
CHECK=$KEYD_SOURCE_DIR/tests/integration/passport_check.py
H='{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"'$X5U'"}'
"$PY" "$CHECK" "$C/shaken.pem" "$(sed -n 1p "$T/out")" '{"header":'$H',"claims":{"attest":"B","dest":{"tn":["13125550100"]},"orig":{"tn":"12025550123"},"origid":"3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b10"},"identity_tail":";info=<'$X5U'>;alg=ES256;ppt=shaken"}' >/dev/null ||
  fail "PyJWT refused the module's PASSporT"
"$PY" "$CHECK" "$C/shaken.pem" "$(cat "$T/out.jws")" '{"header":'$H',"claims":{"attest":"C","dest":{"tn":["13125550100"]},"orig":{"tn":"19995550000"},"origid":"*"}}' >/dev/null ||
  fail "PyJWT refused the module's JWS"
"$PY" "$CHECK" "$C/shaken.pem" "$(sed -n 2p "$T/out")" '{"header":{"alg":"ES256","ppt":"div","typ":"passport","x5u":"'$X5U'"},"claims":{"dest":{"tn":["13125550100"]},"div":{"tn":"12025550199"},"orig":{"tn":"14085550000"}},"identity_tail":";info=<'$X5U'>;alg=ES256;ppt=div"}' >/dev/null ||
  fail "PyJWT refused the module's div PASSporT"
pass "the Python module signs, reads a public key, makes and opens SRTP keys, gets PASSporTs, raises refusals"
stop_keyd
