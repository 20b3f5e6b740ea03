#!/usr/bin/python3
# sip_peer.py: the two ends of tests/e2e/kamailio_shaken.sh, over UDP on
# 127.0.0.1.
#   sip_peer.py receive PORT DIR N: takes N SIP requests (60 s at most)
#     and writes each one's Identity header value, or nothing, to
#     DIR/CALL-ID.identity.
#   sip_peer.py send PORT TO-PORT CALL-ID FROM-USER TO-USER ATTEST: sends
#     one INVITE with an X-Attest header to 127.0.0.1:TO-PORT from PORT.
import os
import socket
import sys


def receive(port, outdir, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(60)
    for _ in range(n):
        data = s.recv(65535).decode("utf-8", "replace")
        head = data.split("\r\n\r\n", 1)[0].split("\r\n")
        callid = ident = None
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name in ("call-id", "i"):
                callid = value.strip()
            elif name == "identity":
                ident = value.strip()
        with open(os.path.join(outdir, callid + ".identity"), "w") as f:
            f.write(ident or "")


def send(port, to_port, callid, from_user, to_user, attest):
    msg = ("INVITE sip:%(to)s@127.0.0.1:%(tp)d SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%(p)d;branch=z9hG4bK-%(c)s\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%(fr)s@127.0.0.1>;tag=%(c)s\r\n"
           "To: <sip:%(to)s@127.0.0.1>\r\n"
           "Call-ID: %(c)s\r\n"
           "CSeq: 1 INVITE\r\n"
           "Contact: <sip:caller@127.0.0.1:%(p)d>\r\n"
           "X-Attest: %(a)s\r\n"
           "Content-Length: 0\r\n\r\n") % {
               "to": to_user, "tp": to_port, "p": port, "c": callid,
               "fr": from_user, "a": attest}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.sendto(msg.encode(), ("127.0.0.1", to_port))


if sys.argv[1] == "receive":
    receive(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
else:
    send(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:8])
