#!/usr/bin/python3
# passport_sign.py KEY.pem JSON: a PASSporT made by PyJWT (Debian's
# python3-jwt), an ES256 JWS independent of keyd, for
# tests/integration/passport_verify.sh. JSON holds "header" (merged over
# ppt=shaken, typ=passport, x5u) and "claims" (in the order given: the
# verifier must take any order), and optionally "flip": "header",
# "payload" or "signature", which part gets one bit flipped (in a middle
# base64url character, so that the result is still canonical base64url).
# "es256_whatever_alg": true signs with ES256 whatever the header's alg
# says (PyJWT's encode would sign with that alg), through PyJWT's own
# ES256 (jwt.algorithms.ECAlgorithm), for a header that lies about alg.
import base64
import json
import sys

import jwt
from jwt.algorithms import ECAlgorithm

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def main():
    with open(sys.argv[1], "rb") as f:
        key = f.read()
    spec = json.loads(sys.argv[2])
    header = {"ppt": "shaken", "typ": "passport",
              "x5u": "https://cert.example.org/shaken.pem"}
    header.update(spec.get("header", {}))
    if spec.get("es256_whatever_alg"):
        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        header.setdefault("alg", "ES256")
        si = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + \
            b64(json.dumps(spec["claims"], separators=(",", ":")).encode())
        es = ECAlgorithm(ECAlgorithm.SHA256)
        tok = si + "." + b64(es.sign(si.encode(), es.prepare_key(key)))
    else:
        tok = jwt.encode(spec["claims"], key, algorithm="ES256",
                         headers=header)
    if isinstance(tok, bytes):
        tok = tok.decode()
    flip = spec.get("flip")
    if flip:
        parts = tok.split(".")
        i = ["header", "payload", "signature"].index(flip)
        p = parts[i]
        k = len(p) // 2
        parts[i] = p[:k] + B64[B64.index(p[k]) ^ 1] + p[k + 1:]
        tok = ".".join(parts)
    print(tok)


main()
