# kemi_shaken.py: a Kamailio KEMI routing script in Python (app_python3)
# that signs the calls it originates with keyd, for
# tests/e2e/kamailio_shaken.sh and docs/shaken.md's recipe. For every
# INVITE it asks keyd, through the Python module keyd.py, for a PASSporT
# with the caller ($fU) as orig and the called number ($rU) as dest, adds
# the Identity header, and forwards the request to KEYD_KEMI_NEXT_HOP. A
# refusal (the client's attest_max, its numbers, an expired certificate)
# is logged and the call goes on without an Identity header. The
# attestation comes from the X-Attest header here, so that the test can
# ask for levels; a real SBC decides it from its own knowledge of the
# caller.
import os

import KSR
import keyd

KEY = os.environ.get("KEYD_KEMI_KEY", "shaken")
NEXT_HOP = os.environ["KEYD_KEMI_NEXT_HOP"]


def mod_init():
    return kamailio()


class kamailio:
    def __init__(self):
        # One connection per Kamailio process, opened after the fork.
        self.client = None

    def child_init(self, rank):
        return 0

    def identity(self):
        attest = KSR.pv.get("$hdr(X-Attest)") or "C"
        orig = KSR.pv.get("$fU")
        dest = KSR.pv.get("$rU")
        try:
            if self.client is None:
                self.client = keyd.Client()
            return self.client.passport(KEY, attest, orig, [dest])
        except keyd.Error as e:
            KSR.err("keyd: no PASSporT for call %s: %s\n"
                    % (KSR.pv.get("$ci"), e))
            if e.code not in (keyd.ERR_DENIED, keyd.ERR_INVALID_ARG,
                              keyd.ERR_CERTIFICATE):
                self.client = None   # reconnect next time
            return None

    def ksr_request_route(self, msg):
        if KSR.is_INVITE() and KSR.hdr.is_present("Identity") < 0:
            ident = self.identity()
            if ident is not None:
                KSR.hdr.append("Identity: %s\r\n" % ident)
        KSR.forward_uri(NEXT_HOP)
        return 1
