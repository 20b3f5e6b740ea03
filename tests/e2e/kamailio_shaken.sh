#!/usr/bin/env bash
# kamailio_shaken.sh: a session controller signs a call end to end.
# Kamailio (Debian's kamailio and kamailio-python3-modules) runs the KEMI
# Python routing script tests/e2e/kamailio/kemi_shaken.py on 127.0.0.1: it
# receives INVITEs from a small Python sender, asks keyd for a PASSporT
# through the Python module keyd.py, adds the Identity header and forwards
# the INVITE to a receiver. The receiver's Identity header is verified by
# PyJWT against the certificate (passport_check.py), and keyd's audit log
# shows the signature. A call over the client's attest_max goes on
# without an Identity header, and the routing script logs the refusal.
# 77 (skipped) only where Kamailio or its Python 3 module is not
# installed (scripts/deps.sh installs both).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

KAM=/usr/sbin/kamailio
MPATH=$(dirname "$(dpkg -L kamailio-python3-modules 2>/dev/null | grep '/app_python3\.so$' | head -n1)")
if [[ ! -x $KAM || ! -f $MPATH/app_python3.so ]]; then
  echo "SKIP: Kamailio or kamailio-python3-modules is not installed"
  exit 77
fi
PY=/usr/bin/python3
"$PY" -c 'import jwt' 2>/dev/null || fail "PyJWT is missing (scripts/deps.sh)"
DIR=$KEYD_SOURCE_DIR/tests/e2e/kamailio
PEER=$DIR/sip_peer.py

TOKEN=kam
make_token $TOKEN
keygen EC:prime256v1 shaken 01
source "$KEYD_SOURCE_DIR/tests/integration/shaken_lib.sh"
shaken_ca shaken
issue shaken "$(tnauth spc "e = EXPLICIT:0,IA5STRING:709J")" \
  "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" "$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)" "$C/shaken.csr"
X5U=https://cert.example.org/shaken.pem
write_pin
write_config <<CONF
[key shaken]
uri = pkcs11:token=$TOKEN;object=shaken;type=private
ops = passport
x5u = $X5U
certificate = $C/shaken.pem
[client kamailio]
uid = $(id -u)
keys = shaken
ops = passport
attest_max = B
orig_tns = 1202555*
CONF
start_keyd

# Three free UDP ports on 127.0.0.1: Kamailio, the receiver, the sender.
read -r KPORT RPORT SPORT < <("$PY" -c '
import socket
ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
sed -e "s|@LISTEN@|127.0.0.1:$KPORT|" -e "s|@MPATH@|$MPATH|" \
  -e "s|@SCRIPT@|$DIR/kemi_shaken.py|" "$DIR/kamailio.cfg.in" >"$T/kamailio.cfg"
mkdir -p "$T/rx" "$T/kam"
"$PY" "$PEER" receive "$RPORT" "$T/rx" 2 &
RX_PID=$!

# The module over the built libkeyd; a sanitizer build's needs the ASan
# runtime loaded first.
KENV=(env PYTHONPATH="$KEYD_SOURCE_DIR/client/python"
  KEYD_LIBRARY="$KEYD_BUILD_DIR/client/libkeyd.so.0" KEYD_SOCKET="$KEYD_SOCKET"
  KEYD_KEMI_NEXT_HOP="sip:127.0.0.1:$RPORT;transport=udp")
if [[ -n ${KEYD_P11_PRELOAD:-} ]]; then
  KENV+=(LD_PRELOAD="$KEYD_P11_PRELOAD" ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0)
fi
"${KENV[@]}" "$KAM" -f "$T/kamailio.cfg" -DD -E -Y "$T/kam" -P "$T/kam/kamailio.pid" \
  >"$T/kamailio.log" 2>&1 &
KAM_PID=$!
stop_kam() {
  kill -TERM "$KAM_PID" 2>/dev/null || true
  wait "$KAM_PID" 2>/dev/null || true
}
trap 'stop_kam; kill "$RX_PID" 2>/dev/null || true; cleanup' EXIT
# Until Kamailio holds its port (30 s: a loaded machine, a sanitizer
# build's libkeyd in every process).
bound() {
  "$PY" -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(('127.0.0.1', $KPORT))
except OSError:
    sys.exit(0)
sys.exit(1)"
}
for _ in $(seq 1 300); do
  grep -q "ERROR\|CRITICAL" "$T/kamailio.log" && break
  bound && break
  kill -0 "$KAM_PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$KAM_PID" 2>/dev/null && bound ||
  fail "Kamailio did not start: $(tail -20 "$T/kamailio.log")"
sleep 0.5   # its children have run child_init

"$PY" "$PEER" send "$SPORT" "$KPORT" call-b@test +12025550123 13125550100 B
"$PY" "$PEER" send "$SPORT" "$KPORT" call-a@test +12025550124 13125550100 A
wait "$RX_PID" || fail "the receiver did not get both INVITEs: $(tail -20 "$T/kamailio.log")"

ident=$(cat "$T/rx/call-b@test.identity")
[[ -n $ident ]] || fail "the INVITE of call-b reached the receiver without an Identity header: $(tail -20 "$T/kamailio.log")"
"$PY" "$KEYD_SOURCE_DIR/tests/integration/passport_check.py" "$C/shaken.pem" "$ident" \
  '{"header":{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"'$X5U'"},"claims":{"attest":"B","dest":{"tn":["13125550100"]},"orig":{"tn":"12025550123"},"origid":"*"},"identity_tail":";info=<'$X5U'>;alg=ES256;ppt=shaken"}' \
  >/dev/null 2>"$T/err" || fail "PyJWT: $(cat "$T/err")"
grep -F '"client":"kamailio"' "$T/audit.jsonl" | grep -F '"op":"passport","key":"shaken","mech":"es256","result":"ok"' |
  has -F '"ppt":"shaken","attest":"B","orig":"12025550123","dest":["13125550100"]' ||
  fail "keyd's audit log does not show the signature: $(grep passport "$T/audit.jsonl")"
pass "Kamailio's KEMI Python script signed a call through keyd; PyJWT verifies the Identity header the receiver got"

[[ ! -s "$T/rx/call-a@test.identity" ]] || fail "call-a, over attest_max, got an Identity header"
grep -qF "keyd: no PASSporT for call call-a@test: permission denied by policy: attest_max: client 'kamailio' may attest at most B, not A" \
  "$T/kamailio.log" || fail "the routing script did not log the refusal: $(grep -i keyd "$T/kamailio.log" | tail -5)"
grep -F '"op":"passport"' "$T/audit.jsonl" | grep -F '"error":-6' |
  has -F '"detail":"attest_max: client '"'kamailio'"' may attest at most B, not A"' ||
  fail "the refusal is not in keyd's audit log"
pass "a call over attest_max goes on without an Identity header; the script logs the refusal, keyd audits it"
stop_kam
stop_keyd
