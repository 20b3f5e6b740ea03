#!/usr/bin/python3
# passport_check.py CERT.pem PASSPORT WANT.json: an independent check of a
# PASSporT keyd made, for tests/integration/passport.sh. PyJWT (Debian's
# python3-jwt) verifies the ES256 signature against the certificate's
# public key; the decoded header and claims must be exactly WANT's
# "header" and "claims", except that "iat" must be within "iat_slack"
# seconds of now and an "origid" of "*" stands for a random version 4 UUID
# in lower case. The header and payload must be byte for byte the JSON
# re-serialised with sorted keys and no whitespace (RFC 8225 section 9).
# PASSPORT is a JWS or a SIP Identity header value; for the latter WANT's
# "identity_tail" is what must follow the JWS. Prints the claims as JSON
# and exits 0, or prints what differs and exits 1.
import base64
import json
import re
import sys
import time

import jwt
from cryptography import x509

UUID4 = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def die(msg):
    print("passport_check: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    with open(sys.argv[1], "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    value = sys.argv[2].strip()
    want = json.loads(sys.argv[3])
    tok = value.split(";", 1)[0]
    if ";" in value:
        tail = value[len(tok):]
        if tail != want.get("identity_tail"):
            die("Identity header parameters %r, not %r"
                % (tail, want.get("identity_tail")))
    parts = tok.split(".")
    if len(parts) != 3:
        die("not a JWS in compact serialization")
    try:
        claims = jwt.decode(tok, cert.public_key(), algorithms=["ES256"],
                            options={"verify_exp": False,
                                     "verify_aud": False})
    except jwt.InvalidTokenError as e:
        die("PyJWT refuses it: %s" % e)
    header = jwt.get_unverified_header(tok)
    for name, obj, raw in (("header", header, parts[0]),
                           ("payload", claims, parts[1])):
        canon = json.dumps(obj, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
        if b64d(raw) != canon:
            die("the %s is not deterministic JSON: %r, not %r"
                % (name, b64d(raw), canon))
    if header != want["header"]:
        die("header %s, not %s" % (json.dumps(header), json.dumps(
            want["header"])))
    got = dict(claims)
    exp = dict(want["claims"])
    iat = got.pop("iat", None)
    if not isinstance(iat, int) or abs(iat - time.time()) > \
            want.get("iat_slack", 5):
        die("iat %r is not keyd's time now" % (iat,))
    if exp.get("origid") == "*":
        if not UUID4.match(str(got.get("origid"))):
            die("origid %r is not a random version 4 UUID in lower case"
                % (got.get("origid"),))
        exp["origid"] = got["origid"]
    if got != exp:
        die("claims %s, not %s" % (json.dumps(got, sort_keys=True),
                                   json.dumps(exp, sort_keys=True)))
    print(json.dumps(claims, sort_keys=True, separators=(",", ":")))


main()
