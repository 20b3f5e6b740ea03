#!/usr/bin/env bash
# rotation_kamailio.sh: docs/rotation.md's TLS recipe, step by step, with
# Kamailio as the session controller and `kamcmd tls.reload` as its switch.
#   - Kamailio 5.6 (Debian 12): the tls module's key through libp11's engine
#     and keyd-pkcs11.so (/engine:pkcs11:... keys, the engine in the tls
#     module's parameters, docs/pkcs11.md "Kamailio 5.x"); the CSR is signed
#     through the engine and keyd-pkcs11.so;
#   - Kamailio 6 (Debian 13): the key through keyd's own provider keyd.so
#     (/uri:keyd:NAME keys, e2e_provider_kamailio's set-up); the CSR is
#     signed through keyd.so.
# Kamailio serves SIP over TLS from a tls.cfg server profile with key A
# (sip-tls) while a client makes TLS 1.3 and 1.2 handshakes, each with a SIP
# OPTIONS that must get 200, without pause. Then: key B (sip-tls-2) is made on
# the token (keyd-backup keygen) and served beside A (keydctl reload); its
# certificate is issued by the test CA over a CSR signed through keyd; the
# profile is switched to B and `kamcmd tls.reload` run over Kamailio's ctl
# socket; A leaves keyd's configuration (keydctl reload). Neither Kamailio
# 5.6 (engine key) nor 6.0.1 (keyd.so key) loads the new key in its workers
# on tls.reload: the test checks that handshakes fail after it (the client
# stopped), and switches by restarting Kamailio (the client stopped during
# the restart, started again after it). No connection of the client may fail; Kamailio then
# presents B's certificate (its SHA-256 fingerprint);
# keyd's audit log shows Kamailio signing with B after the switch, only with
# B after A left, and keyd-audit verify passes (signed checkpoints).
# KAMAILIO_ROTATION_BREAK=no-keyd-reload skips the keyd reload that serves B
# before Kamailio switches: the test must then fail (how it was checked that
# a failure is seen).
# 77 (skipped) where Kamailio or its tls module is not installed
# (scripts/deps.sh installs them on both releases). About 20 s.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

KAMAILIO=$(command -v kamailio || true)
KAMCMD=$(command -v kamcmd || true)
KMODS=/usr/lib/x86_64-linux-gnu/kamailio/modules
if [[ -z $KAMAILIO || -z $KAMCMD || ! -f $KMODS/tls.so || ! -f $KMODS/ctl.so ]]; then
  echo "SKIP: Kamailio with its tls and ctl modules is not installed (kamailio, kamailio-tls-modules)"
  exit 77
fi
KVER=$("$KAMAILIO" -v 2>/dev/null | sed -n 's/^version: kamailio \([0-9]*\)\..*/\1/p')
case $KVER in
  5) MODE=engine ;;
  6) MODE=provider ;;
  *) echo "SKIP: $("$KAMAILIO" -v 2>/dev/null | head -n1): this test knows Kamailio 5 (engine) and 6 (provider)"; exit 77 ;;
esac
CLIENT=$KEYD_SOURCE_DIR/tests/e2e/sip_tls_options.py
PROVDIR=$KEYD_BUILD_DIR/client/provider
BREAK=${KAMAILIO_ROTATION_BREAK:-}

make_token "$TOKEN"
write_pin
kb() { "$KEYD_BUILD_DIR/keyd/keyd-backup" keygen --module "$SOFTHSM_MODULE" \
  --token "pkcs11:token=$TOKEN" --pin-file "$T/pin" "$@" >/dev/null; }
kb --type ec:p256 --label sip-tls --id 01 --usage sign
keygen EC:prime256v1 audit 0a
export_pub 0a "$T/audit.pem"
sandbox=yes
[[ -n ${KEYD_P11_PRELOAD:-} ]] && sandbox=no
# conf KEY...: Kamailio (this test's uid) may sign with KEY...; it also
# runs keydctl reload.
conf() {
  {
    echo "sandbox = $sandbox"
    echo "audit_key = pkcs11:token=$TOKEN;object=audit;type=private"
    echo "audit_checkpoint_lines = 50"
    for k in "$@"; do
      printf '[key %s]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' \
        "$k" "$TOKEN" "$k"
    done
    printf '[client kamailio]\nuid = %s\nkeys = %s\nops = sign, reload\n' \
      "$(id -u)" "$(IFS=,; echo "$*")"
  } | write_config
}
conf sip-tls
mkdir -p "$T/state"
start_keyd
printf 'socket = %s\ntoken_label = %s\nhide_ed25519 = yes\n' "$KEYD_SOCKET" "$P11LABEL" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf
p11_ca

if [[ $MODE == engine ]]; then
  p11_engine_conf
  # Kamailio 5.6 reads engine_config itself, in each TCP worker: the
  # "kamailio" key names a section whose "engines" section names, under
  # the engine's id, the section of the engine. dynamic_path is its
  # SO_PATH; every other line there is passed to the engine as a control
  # command, so OpenSSL's engine_id and init lines must not be there (with
  # "init = 0" every worker fails "TLS Engine: init" and Kamailio stops).
  cat > "$T/kamailio-engine.cnf" <<CNF
kamailio = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
dynamic_path = $ENGINE
MODULE_PATH = $MODULE
CNF
  keyuri() { echo "/engine:pkcs11:token=$P11LABEL;object=$1;type=private"; }
  # cert KEY OUT: the CSR through libp11's engine and keyd-pkcs11.so.
  cert() { p11_cert "$@"; }
  KENV=(env)
else
  [[ -f $PROVDIR/keyd.so ]] || fail "$PROVDIR/keyd.so is not built (target keyd-provider)"
  keyd_provider_cnf "$T/keyd-provider.cnf"
  keyuri() { echo "/uri:keyd:$1"; }
  # cert KEY OUT: the CSR through keyd.so.
  cert() {
    OPENSSL_CONF=$T/keyd-provider.cnf timeout 30 "${EXT[@]}" openssl req -new -key "keyd:$1" \
      -subj /CN=localhost -out "$T/$1.csr" >"$T/req.log" 2>&1 ||
      { cat "$T/req.log" >&2; fail "openssl req through keyd.so for $1"; }
    openssl req -in "$T/$1.csr" -noout -verify >/dev/null 2>&1 ||
      fail "the request signed through keyd.so does not verify"
    printf 'subjectAltName = DNS:localhost\n' > "$T/ext.cnf"
    openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
      -CAcreateserial -days 2 -extfile "$T/ext.cnf" -out "$2" >/dev/null 2>&1 ||
      fail "the CA cannot sign the request for $1"
  }
  KENV=(env OPENSSL_CONF="$T/keyd-provider.cnf")
fi
[[ ${#EXT[@]} -eq 0 ]] || KENV+=("${EXT[@]:1}")
cert sip-tls "$T/sip-tls.pem"

# tls_cfg KEY: the tls module's config file, one server profile.
tls_cfg() {
  cat > "$T/tls.cfg.new" <<CFG
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $(keyuri "$1")
certificate = $T/$1.pem

[client:default]
verify_certificate = no
require_certificate = no
CFG
  mv "$T/tls.cfg.new" "$T/tls.cfg"
}
tls_cfg sip-tls
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CTL=unix:$T/kamailio_ctl
mkdir -p "$T/kam"
{
  cat <<CFG
#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
disable_tcp=no
enable_tls=yes
listen=tls:127.0.0.1:$PORT
mpath="$KMODS/"
loadmodule "sl.so"
loadmodule "ctl.so"
loadmodule "tls.so"
modparam("ctl", "binrpc", "$CTL")
modparam("tls", "config", "$T/tls.cfg")
CFG
  if [[ $MODE == engine ]]; then
    cat <<CFG
modparam("tls", "engine", "pkcs11")
modparam("tls", "engine_config", "$T/kamailio-engine.cnf")
CFG
  fi
  cat <<'CFG'
request_route {
  if (method == "OPTIONS") {
    sl_send_reply("200", "OK");
    exit;
  }
  sl_send_reply("403", "Forbidden");
}
CFG
} > "$T/kamailio.cfg"

KPID= LOOP_PID=
stop_kamailio() {
  if [[ -n $KPID ]]; then
    kill -TERM "$KPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null || true
    wait "$KPID" 2>/dev/null || true
    KPID=
  fi
}
trap 'rc=$?; [[ -z $LOOP_PID ]] || kill "$LOOP_PID" 2>/dev/null; stop_kamailio; set +e; (exit $rc); cleanup' EXIT
# start_kamailio: Kamailio in the foreground (-DD: it forks its workers,
# not itself) with the current tls.cfg, until it serves an OPTIONS.
options() { timeout 30 python3 "$CLIENT" 127.0.0.1 "$PORT" "$T/ca.pem" "$@"; }
start_kamailio() {
  "${KENV[@]}" "$KAMAILIO" -DD -E -m 64 -M 8 -w "$T/kam" -Y "$T/kam" -f "$T/kamailio.cfg" \
    >>"$T/kamailio.log" 2>&1 &
  KPID=$!
  for _ in $(seq 1 200); do
    options 2 >/dev/null 2>&1 && return 0
    kill -0 "$KPID" 2>/dev/null || break
    sleep 0.1
  done
  options 2 >"$T/client.out" 2>&1 ||
    { cat "$T/client.out" >&2; tail -n 30 "$T/kamailio.log" >&2; fail "Kamailio does not serve SIP over TLS with $1"; }
}
start_kamailio "key A"
kam() { "$KAMCMD" -s "$CTL" "$@"; }
# served: the SHA-256 fingerprint of the certificate Kamailio presents.
served() {
  openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$T/ca.pem" \
    </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
}
fpr() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
[[ $(served) == "$(fpr "$T/sip-tls.pem")" ]] || fail "Kamailio does not present A's certificate"

# start_loop / stop_loop: TLS connections without pause, one process
# (sip_tls_options.py's client) alternating TLS 1.3 and TLS 1.2, each
# connection with an OPTIONS that must get 200; stop_loop adds the loop's
# counts to OK and BAD.
OK=0 BAD=0
start_loop() {
  rm -f "$T/loop.stop" "$T/loop.out"
  python3 - "$KEYD_SOURCE_DIR/tests/e2e" "$PORT" "$T" <<'PY' &
import os, ssl, sys, time
sys.path.insert(0, sys.argv[1])
from sip_tls_options import one
port, t = int(sys.argv[2]), sys.argv[3]
ok = bad = 0
versions = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2)
with open(os.path.join(t, "loop.err"), "a") as err:
    while not os.path.exists(os.path.join(t, "loop.stop")):
        r = [None]
        one("127.0.0.1", port, os.path.join(t, "ca.pem"), versions[(ok + bad) % 2], None, None, r, 0)
        if r[0] and r[0].startswith("ok"):
            ok += 1
        else:
            bad += 1
            print(time.strftime("%T"), r[0], file=err, flush=True)
with open(os.path.join(t, "loop.out"), "w") as out:
    print(ok, bad, file=out)
PY
  LOOP_PID=$!
}
stop_loop() {
  local ok bad
  touch "$T/loop.stop"
  wait "$LOOP_PID"; LOOP_PID=
  read -r ok bad < "$T/loop.out"
  OK=$((OK + ok)) BAD=$((BAD + bad))
}
start_loop
sleep 1

# Step 1: key B on the token, made as every key keyd serves is made.
kb --type ec:p256 --label sip-tls-2 --id 02 --usage sign
# Step 2: B served beside A, under a new name.
conf sip-tls sip-tls-2
if [[ $BREAK != no-keyd-reload ]]; then
  "$KEYDCTL" reload > "$T/rl.out" || fail "reload with sip-tls-2 refused"
  grep -q "keys +sip-tls-2" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
  # Step 3: B's certificate, over a CSR signed through keyd.
  cert sip-tls-2 "$T/sip-tls-2.pem"
else
  echo "(KAMAILIO_ROTATION_BREAK=no-keyd-reload: keyd does not serve sip-tls-2; its certificate is issued for the token's public key)"
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --read-object \
    --type pubkey --id 02 -o "$T/b.der" >/dev/null 2>&1
  openssl pkey -pubin -inform DER -in "$T/b.der" -out "$T/b.pem"
  openssl req -new -key "$T/ca.key" -subj /CN=localhost -out "$T/dummy.csr" 2>/dev/null
  printf 'subjectAltName = DNS:localhost\n' > "$T/ext.cnf"
  openssl x509 -req -in "$T/dummy.csr" -force_pubkey "$T/b.pem" -CA "$T/ca.pem" \
    -CAkey "$T/ca.key" -CAcreateserial -days 2 -extfile "$T/ext.cnf" \
    -out "$T/sip-tls-2.pem" 2>/dev/null || fail "cannot issue B's certificate"
fi
# Step 4: Kamailio switches: the server profile names B, then tls.reload.
line=$(wc -l < "$T/audit.jsonl")
tls_cfg sip-tls-2
# Neither Kamailio switches its key on tls.reload: 5.6 loads an engine key
# in each TCP worker when the worker starts (tls_fix_engine_keys in
# mod_child), and tls.reload makes the new TLS context in the RPC process,
# where no worker loads its key; Kamailio 6.0.1 does the same with a /uri:
# key through keyd.so. Every handshake after tls.reload fails ("no suitable
# signature algorithm", "no shared cipher"). This checks that it still does,
# with the client stopped, so that docs/rotation.md stays true; then the
# switch that works, a restart of Kamailio, is made, the client stopped
# while Kamailio is down and started again once it serves.
stop_loop
kam tls.reload > "$T/tlsreload.out" 2>&1 ||
  { cat "$T/tlsreload.out" >&2; tail -n 30 "$T/kamailio.log" >&2; fail "kamcmd tls.reload failed"; }
sleep 0.5
if options 2 > "$T/client.out" 2>&1; then
  fail "Kamailio $KVER served TLS with the new $MODE key after tls.reload: update docs/rotation.md and this test"
fi
grep -q "no suitable signature algorithm\|no shared cipher" "$T/kamailio.log" ||
  { tail -n 20 "$T/kamailio.log" >&2; fail "after tls.reload handshakes fail, but not as docs/rotation.md says"; }
echo "Kamailio $KVER ($MODE): after tls.reload every handshake fails, as documented: $(grep -c '^fail' "$T/client.out") of 2"
stop_kamailio
t0=$(date +%s%N)
start_kamailio "key B"
t1=$(date +%s%N)
gap=$(( (t1 - t0) / 1000000000 )).$(printf '%01d' $(( (t1 - t0) / 100000000 % 10 )))
echo "Kamailio $KVER: restarted with key B, serving again after ${gap} s"
start_loop
SWITCH="a restart of Kamailio (tls.reload does not load the $MODE key in its workers; serving again ${gap} s after the stop)"
for _ in $(seq 1 50); do [[ $(served) == "$(fpr "$T/sip-tls-2.pem")" ]] && break; sleep 0.1; done
[[ $(served) == "$(fpr "$T/sip-tls-2.pem")" ]] ||
  { tail -n 30 "$T/kamailio.log" >&2; fail "after the switch Kamailio does not present B's certificate (it presents: $(served))"; }
sleep 1
# Step 5: A leaves keyd's configuration.
conf sip-tls-2
"$KEYDCTL" reload > "$T/rl.out" || fail "reload without sip-tls refused"
grep -q "keys .*-sip-tls" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
mark=$(wc -l < "$T/audit.jsonl")
sleep 2
stop_loop
[[ $BAD -eq 0 ]] || { tail -n 30 "$T/kamailio.log" >&2; fail "$BAD of $((OK + BAD)) TLS connections failed: $(head -5 "$T/loop.err")"; }
(( OK >= 20 )) || fail "only $OK TLS connections during the rotation"
[[ $(served) == "$(fpr "$T/sip-tls-2.pem")" ]] || fail "Kamailio no longer presents B's certificate"

# The audit log: Kamailio signed with B after the switch (the CSR was
# signed before it), and with nothing but B once A had left.
tail -n +"$((line + 1))" "$T/audit.jsonl" > "$T/since"
grep '"op":"sign","key":"sip-tls-2"' "$T/since" | grep '"result":"ok"' > "$T/b.signs" || true
[[ -s $T/b.signs ]] || fail "no signature with sip-tls-2 after the switch"
tail -n +"$((mark + 1))" "$T/audit.jsonl" | grep '"op":"sign"' > "$T/after" || true
[[ -s $T/after ]] || fail "no signature after A left keyd's configuration"
[[ -z $(grep -v '"key":"sip-tls-2"' "$T/after") ]] || fail "Kamailio signed with another key than sip-tls-2 after A left: $(grep -v '"key":"sip-tls-2"' "$T/after" | head -2)"
[[ -z $(grep -v '"result":"ok"' "$T/after") ]] || fail "a signature failed after A left: $(grep -v '"result":"ok"' "$T/after" | head -2)"
stop_kamailio
stop_keyd
"$KEYD_BUILD_DIR/keyd/keyd-audit" verify "$T/audit.jsonl" --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 ||
  { cat "$T/v.out" >&2; fail "keyd-audit verify fails"; }
pass "Kamailio $KVER ($MODE): TLS key rotated through keyd, switched by $SWITCH: $OK TLS 1.3/1.2 OPTIONS in the loop, none failed; B's certificate served; keyd's audit log shows B only after A left, and verifies"
