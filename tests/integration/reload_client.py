#!/usr/bin/env python3
"""reload_client.py: a long-lived libkeyd client for the reload tests.

  reload_client.py repl
      one connection; reads commands from stdin, one a line, and answers
      each with one line on stdout: "ok ..." or "err CODE DETAIL".
        sign KEY          an ECDSA-SHA256 signature of a fixed digest,
                          verified against the key's public key from keyd
        srtp KEY          srtp-new, then srtp-open of the blob: the keys
                          must be the same
        name              the [client] this connection was admitted as
  reload_client.py load SIGNKEY KEK STOPFILE
      one connection; signs (each signature verified) and makes and opens
      SRTP keys (compared) until STOPFILE exists; exits 1 at the first
      failed request (printing it), else prints "ok N".

The socket is $KEYD_SOCKET. The module is client/python/keyd.py over the
built libkeyd (PYTHONPATH, KEYD_LIBRARY).
"""
import hashlib
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

import keyd

DIGEST = hashlib.sha256(b"keyd reload test").digest()


def verify(c, key, sig):
    pub = serialization.load_der_public_key(c.pubkey(key))
    pub.verify(sig, DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def sign(c, key):
    sig = c.sign(key, keyd.ECDSA_SHA256, DIGEST)
    verify(c, key, sig)


def srtp(c, key, n):
    ctx = b"call-%d" % n
    ks, kp, blob = c.srtp_new(key, "AEAD_AES_256_GCM", ctx)
    _, ks2, kp2 = c.srtp_open(key, blob, ctx)
    if ks != ks2 or kp != kp2:
        raise RuntimeError("srtp-open gave another key than srtp-new")


def repl():
    c = keyd.Client()
    n = 0
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        n += 1
        try:
            if words[0] == "sign":
                sign(c, words[1])
                print("ok", flush=True)
            elif words[0] == "srtp":
                srtp(c, words[1], n)
                print("ok", flush=True)
            elif words[0] == "name":
                print("ok", c.name, flush=True)
            else:
                print("err 0 unknown command", flush=True)
        except keyd.Error as e:
            print("err %d %s" % (e.code, e.detail), flush=True)


def load(signkey, kek, stop):
    c = keyd.Client()
    n = 0
    while not os.path.exists(stop):
        try:
            sign(c, signkey)
            srtp(c, kek, n)
        except Exception as e:  # every failure is the test's failure
            print("FAILED after %d rounds: %r" % (n, e), flush=True)
            return 1
        n += 1
    print("ok", n, flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "repl":
        repl()
    elif sys.argv[1] == "load":
        sys.exit(load(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        sys.exit("usage: reload_client.py repl | load SIGNKEY KEK STOPFILE")
