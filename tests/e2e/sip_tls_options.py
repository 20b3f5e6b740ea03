#!/usr/bin/env python3
"""sip_tls_options.py: sends SIP OPTIONS over TLS and checks the 200.

usage: sip_tls_options.py HOST PORT CAFILE COUNT [CLIENT_CERT CLIENT_KEY]

Opens COUNT TLS connections to HOST:PORT at once (so that a server with
several TLS workers gets them spread over its workers), half of them TLS
1.3 and half TLS 1.2, each verifying the server's certificate against
CAFILE (host name "localhost"). Each sends one OPTIONS request and must get
"SIP/2.0 200". With CLIENT_CERT and CLIENT_KEY the client authenticates
itself (mutual TLS). Prints one line per connection ("ok TLSv1.3" or
"fail ...") and exits 0 only if every one got its 200.
"""
import socket
import ssl
import sys
import threading
import uuid

TIMEOUT = 15


def one(host, port, cafile, version, cert, key, results, i):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = version
    ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(cert, key)
    call = uuid.uuid4().hex
    req = (
        f"OPTIONS sip:{host}:{port};transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {host}:5999;branch=z9hG4bK{call[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:keyd-test@{host}>;tag={call[:8]}\r\n"
        f"To: <sip:{host}>\r\n"
        f"Call-ID: {call}@keyd-test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(req.encode())
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                status = buf.split(b"\r\n", 1)[0].decode(errors="replace")
                if status.startswith("SIP/2.0 200"):
                    results[i] = f"ok {s.version()}"
                else:
                    results[i] = f"fail {s.version()}: {status!r}"
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        results[i] = f"fail {e!r}"


def main():
    if len(sys.argv) not in (5, 7):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, cafile, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    cert = sys.argv[5] if len(sys.argv) == 7 else None
    key = sys.argv[6] if len(sys.argv) == 7 else None
    results = [None] * count
    threads = []
    for i in range(count):
        v = ssl.TLSVersion.TLSv1_3 if i % 2 == 0 else ssl.TLSVersion.TLSv1_2
        t = threading.Thread(target=one, args=(host, port, cafile, v, cert, key, results, i))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    for r in results:
        print(r if r else "fail: no result")
    return 0 if all(r and r.startswith("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
