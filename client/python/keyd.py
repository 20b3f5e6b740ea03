"""keyd: Python access to keyd, the key custody daemon, through libkeyd.

A small ctypes module over libkeyd.so.0 (no compiled extension), for
Python-scripted session controllers such as Kamailio's KEMI routing in
Python (app_python3). It signs, reads public keys, makes and opens SRTP
master keys, and asks keyd for STIR/SHAKEN PASSporTs:

    import keyd

    with keyd.Client() as c:
        identity = c.passport("shaken", "A", "+12025550123", ["+13125550100"])
        sig = c.sign("sip-tls", keyd.ECDSA_SHA256, digest)

Every failure raises keyd.Error, whose .code is the KEYD_ERR_* number
(negative), .name keyd's short description and .detail the daemon's
message (for a policy refusal it names the rule). The library is
libkeyd.so.0 as the dynamic linker finds it, or the file the
KEYD_LIBRARY environment variable names. A Client is one connection;
libkeyd serialises calls on it, so share it between threads only if one
request at a time is enough (open one per thread or per process
otherwise). docs/libkeyd.md describes the functions this wraps.
"""

import ctypes
import os

__all__ = [
    "Client", "Error", "ECDSA", "ECDSA_SHA256", "ECDSA_SHA384",
    "ECDSA_SHA512", "RSA_PKCS1_SHA256", "RSA_PKCS1_SHA384",
    "RSA_PKCS1_SHA512", "RSA_PKCS1_DIGESTINFO", "RSA_PSS_SHA256",
    "RSA_PSS_SHA384", "RSA_PSS_SHA512", "ED25519", "SRTP_SUITES",
    "ERR_DENIED", "ERR_INVALID_ARG", "ERR_CERTIFICATE",
]

# enum keyd_sign_alg (keyd.h); the values are libkeyd's ABI.
ECDSA = 1
ECDSA_SHA256 = 2
ECDSA_SHA384 = 3
ECDSA_SHA512 = 4
RSA_PKCS1_SHA256 = 5
RSA_PKCS1_SHA384 = 6
RSA_PKCS1_SHA512 = 7
RSA_PKCS1_DIGESTINFO = 8
RSA_PSS_SHA256 = 9
RSA_PSS_SHA384 = 10
RSA_PSS_SHA512 = 11
ED25519 = 12

# enum keyd_srtp_suite, by the names of SDP's a=crypto.
SRTP_SUITES = {
    "AES_CM_128_HMAC_SHA1_80": 1,
    "AES_CM_128_HMAC_SHA1_32": 2,
    "AES_256_CM_HMAC_SHA1_80": 3,
    "AES_256_CM_HMAC_SHA1_32": 4,
    "AEAD_AES_128_GCM": 5,
    "AEAD_AES_256_GCM": 6,
}

# Some KEYD_ERR_* codes (keyd_err.h).
ERR_INVALID_ARG = -3
ERR_DENIED = -6
ERR_CERTIFICATE = -30

_MAX_SIGNATURE = 2048        # KEYD_MAX_SIGNATURE
_SRTP_MAX_KEY_SALT = 46      # KEYD_SRTP_MAX_KEY_SALT
_SRTP_MAX_KEY_PARAMS = 80    # KEYD_SRTP_MAX_KEY_PARAMS
_SRTP_MAX_BLOB = 128         # KEYD_SRTP_MAX_BLOB
_PASSPORT_MAX = 8192         # KEYD_PASSPORT_MAX
_PASSPORT_MAX_DEST = 16      # KEYD_PASSPORT_MAX_DEST

_c_size_p = ctypes.POINTER(ctypes.c_size_t)
_c_u8_p = ctypes.POINTER(ctypes.c_uint8)


def _load():
    lib = ctypes.CDLL(os.environ.get("KEYD_LIBRARY") or "libkeyd.so.0")
    vp = ctypes.c_void_p
    cp = ctypes.c_char_p
    sz = ctypes.c_size_t
    protos = {
        "keyd_connect": (ctypes.c_int, [cp, ctypes.POINTER(vp)]),
        "keyd_close": (None, [vp]),
        "keyd_errmsg": (cp, [vp]),
        "keyd_strerror": (cp, [ctypes.c_int]),
        "keyd_client_name": (cp, [vp]),
        "keyd_free": (None, [vp]),
        "keyd_sign": (ctypes.c_int, [vp, cp, ctypes.c_int, cp, sz,
                                     ctypes.c_char_p, _c_size_p]),
        "keyd_pubkey": (ctypes.c_int, [vp, cp, ctypes.POINTER(_c_u8_p),
                                       _c_size_p]),
        "keyd_srtp_new": (ctypes.c_int, [vp, cp, ctypes.c_int, cp, sz,
                                         ctypes.c_char_p, _c_size_p,
                                         ctypes.c_char_p, sz,
                                         ctypes.c_char_p, _c_size_p]),
        "keyd_srtp_open": (ctypes.c_int, [vp, cp, cp, sz, cp, sz,
                                          ctypes.POINTER(ctypes.c_int),
                                          ctypes.c_char_p, _c_size_p,
                                          ctypes.c_char_p, sz]),
        "keyd_passport": (ctypes.c_int, [vp, cp, cp, cp,
                                         ctypes.POINTER(cp), sz, cp,
                                         ctypes.c_char_p, sz,
                                         ctypes.c_char_p, sz]),
        "keyd_passport_div": (ctypes.c_int, [vp, cp, cp, cp,
                                             ctypes.POINTER(cp), sz,
                                             ctypes.c_char_p, sz,
                                             ctypes.c_char_p, sz]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


_lib = _load()


class Error(Exception):
    """A libkeyd call failed: code (KEYD_ERR_*), name, detail."""

    def __init__(self, code, detail):
        self.code = code
        self.name = _lib.keyd_strerror(code).decode("utf-8", "replace")
        self.detail = detail
        super().__init__("%s: %s" % (self.name, detail) if detail and
                         detail != self.name else self.name)


def _b(s, what):
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode("utf-8")
    raise TypeError("%s must be str or bytes" % what)


def _wipe(buf):
    ctypes.memset(buf, 0, ctypes.sizeof(buf))


class Client:
    """One connection to keyd (keyd_connect); close() or a with block
    ends it."""

    def __init__(self, socket=None):
        h = ctypes.c_void_p()
        r = _lib.keyd_connect(_b(socket, "socket") if socket else None,
                              ctypes.byref(h))
        if r != 0:
            raise Error(r, _lib.keyd_errmsg(None).decode("utf-8", "replace"))
        self._h = h

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def close(self):
        h = getattr(self, "_h", None)
        if h:
            _lib.keyd_close(h)
            self._h = None

    def _handle(self):
        if not self._h:
            raise Error(ERR_INVALID_ARG, "the connection is closed")
        return self._h

    def _fail(self, r):
        raise Error(r, _lib.keyd_errmsg(self._h).decode("utf-8", "replace"))

    @property
    def name(self):
        """The [client] section of keyd's policy this process matched."""
        return _lib.keyd_client_name(self._handle()).decode()

    def sign(self, key, alg, data):
        """The signature of data (a digest, or for ED25519 the message)
        with key, alg one of the module's constants; ECDSA as DER."""
        h = self._handle()
        data = bytes(data)
        sig = ctypes.create_string_buffer(_MAX_SIGNATURE)
        n = ctypes.c_size_t(_MAX_SIGNATURE)
        r = _lib.keyd_sign(h, _b(key, "key"), alg, data, len(data), sig,
                           ctypes.byref(n))
        if r != 0:
            self._fail(r)
        return sig.raw[:n.value]

    def pubkey(self, key):
        """The public key of key as DER SubjectPublicKeyInfo."""
        h = self._handle()
        p = _c_u8_p()
        n = ctypes.c_size_t()
        r = _lib.keyd_pubkey(h, _b(key, "key"), ctypes.byref(p),
                             ctypes.byref(n))
        if r != 0:
            self._fail(r)
        try:
            return ctypes.string_at(p, n.value)
        finally:
            _lib.keyd_free(p)

    def srtp_new(self, key, suite, context=b""):
        """A new SRTP master key for suite (a name of SRTP_SUITES): returns
        (key_salt bytes, "inline:..." key-params, blob bytes). key_salt
        and the key-params are secret."""
        h = self._handle()
        context = _b(context, "context")
        ks = ctypes.create_string_buffer(_SRTP_MAX_KEY_SALT)
        kp = ctypes.create_string_buffer(_SRTP_MAX_KEY_PARAMS)
        blob = ctypes.create_string_buffer(_SRTP_MAX_BLOB)
        ksn = ctypes.c_size_t(_SRTP_MAX_KEY_SALT)
        bn = ctypes.c_size_t(_SRTP_MAX_BLOB)
        try:
            r = _lib.keyd_srtp_new(h, _b(key, "key"), SRTP_SUITES[suite],
                                   context, len(context), ks,
                                   ctypes.byref(ksn), kp, _SRTP_MAX_KEY_PARAMS,
                                   blob, ctypes.byref(bn))
            if r != 0:
                self._fail(r)
            return ks.raw[:ksn.value], kp.value.decode(), blob.raw[:bn.value]
        finally:
            _wipe(ks)
            _wipe(kp)

    def srtp_open(self, key, blob, context=b""):
        """The key in a blob from srtp_new (same key and context): returns
        (suite name, key_salt bytes, "inline:..." key-params)."""
        h = self._handle()
        blob = bytes(blob)
        context = _b(context, "context")
        ks = ctypes.create_string_buffer(_SRTP_MAX_KEY_SALT)
        kp = ctypes.create_string_buffer(_SRTP_MAX_KEY_PARAMS)
        ksn = ctypes.c_size_t(_SRTP_MAX_KEY_SALT)
        suite = ctypes.c_int()
        try:
            r = _lib.keyd_srtp_open(h, _b(key, "key"), blob, len(blob),
                                    context, len(context),
                                    ctypes.byref(suite), ks,
                                    ctypes.byref(ksn), kp,
                                    _SRTP_MAX_KEY_PARAMS)
            if r != 0:
                self._fail(r)
            name = [k for k, v in SRTP_SUITES.items() if v == suite.value]
            return (name[0] if name else suite.value, ks.raw[:ksn.value],
                    kp.value.decode())
        finally:
            _wipe(ks)
            _wipe(kp)

    @staticmethod
    def _tns(dest):
        if isinstance(dest, (str, bytes)):
            dest = [dest]
        dest = [_b(d, "dest") for d in dest]
        if not 1 <= len(dest) <= _PASSPORT_MAX_DEST:
            raise Error(ERR_INVALID_ARG, "a PASSporT has 1 to %d dest TNs"
                        % _PASSPORT_MAX_DEST)
        return (ctypes.c_char_p * len(dest))(*dest), len(dest)

    def passport(self, key, attest, orig, dest, origid=None, jws=False):
        """A STIR/SHAKEN PASSporT (ppt shaken) signed by keyd with key:
        attest "A", "B" or "C", orig a TN, dest a TN or a list of 1 to 16.
        Returns the SIP Identity header value, or with jws=True the JWS."""
        h = self._handle()
        arr, n = self._tns(dest)
        out = ctypes.create_string_buffer(_PASSPORT_MAX)
        r = _lib.keyd_passport(
            h, _b(key, "key"), _b(attest, "attest"), _b(orig, "orig"), arr, n,
            _b(origid, "origid") if origid else None,
            None if jws else out, 0 if jws else _PASSPORT_MAX,
            out if jws else None, _PASSPORT_MAX if jws else 0)
        if r != 0:
            self._fail(r)
        return out.value.decode("ascii")

    def passport_div(self, key, div, orig, dest, jws=False):
        """A diversion PASSporT (RFC 8946, ppt div): a call from orig,
        diverted from the TN div to dest. Returns as passport()."""
        h = self._handle()
        arr, n = self._tns(dest)
        out = ctypes.create_string_buffer(_PASSPORT_MAX)
        r = _lib.keyd_passport_div(
            h, _b(key, "key"), _b(div, "div"), _b(orig, "orig"), arr, n,
            None if jws else out, 0 if jws else _PASSPORT_MAX,
            out if jws else None, _PASSPORT_MAX if jws else 0)
        if r != 0:
            self._fail(r)
        return out.value.decode("ascii")
