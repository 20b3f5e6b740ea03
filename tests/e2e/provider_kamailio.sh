#!/usr/bin/env bash
# Kamailio 6 serves SIP over TLS with its key in keyd, through keyd's
# OpenSSL provider (keyd.so): modparam("tls", "private_key",
# "/uri:keyd:sip-tls") and the provider in OPENSSL_CONF, provider_quirks
# left at 0 (docs/provider.md). Kamailio's tls module puts OpenSSL's
# memory in memory shared by all its processes, and each TLS worker
# loads the key itself.
#   - with 1 and with 8 TLS workers (tcp_children), $KAMAILIO_STARTS starts
#     each (20 in CI): every start serves; each start's TLS 1.3 and 1.2
#     connections (sent at once, so that they spread over the workers)
#     carry a SIP OPTIONS that is answered 200; keyd's audit log shows
#     signatures from every worker that loaded the key (with 8 workers
#     connections are sent until each has signed);
#   - mutual TLS: with verify_certificate and require_certificate on,
#     a client with a certificate completes the handshake and its OPTIONS,
#     and one without is refused;
#   - the same 8-worker start through pkcs11-provider over keyd-pkcs11.so,
#     $KAMAILIO_P11_STARTS times (10 in CI): its success rate is printed
#     beside the keyd provider's (docs/pkcs11.md), not required.
# Skipped (77) where Kamailio 6 with its tls module is not installed:
# Debian 12 has Kamailio 5.6, which has no provider support; CI runs this
# in its fresh Debian 13 root (fresh_debian13).
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

KAMAILIO=$(command -v kamailio || true)
KMODS=/usr/lib/x86_64-linux-gnu/kamailio/modules
if [[ -z $KAMAILIO || ! -f $KMODS/tls.so ]]; then
  echo "SKIP: Kamailio with its tls module is not installed (Debian 13: kamailio, kamailio-tls-modules)"
  exit 77
fi
if ! "$KAMAILIO" -v 2>/dev/null | has '^version: kamailio 6\.'; then
  echo "SKIP: $("$KAMAILIO" -v 2>/dev/null | head -n1): Kamailio 6 is the one that loads keys through OpenSSL 3 providers"
  exit 77
fi

PROVDIR=$KEYD_BUILD_DIR/client/provider
[[ -f $PROVDIR/keyd.so ]] || fail "$PROVDIR/keyd.so is not built (target keyd-provider)"
STARTS=${KAMAILIO_STARTS:-20}
P11_STARTS=${KAMAILIO_P11_STARTS:-10}
CLIENT=$KEYD_SOURCE_DIR/tests/e2e/sip_tls_options.py

p11_keys
start_keyd

keyd_provider_cnf "$T/keyd-provider.cnf"
P11PROV=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')/pkcs11.so
cat > "$T/pkcs11-provider.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect
[default_sect]
activate = 1
[pkcs11_sect]
module = $P11PROV
pkcs11-module-path = $MODULE
activate = 1
CNF

# The server's certificate, over keyd's key (a self-signed one made
# through the provider), and a client CA with one client certificate.
OPENSSL_CONF=$T/keyd-provider.cnf timeout 30 "${EXT[@]}" openssl req -new -x509 -key keyd:sip-tls \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 -out "$T/sip-tls.pem" \
  >"$T/req.log" 2>&1 || { cat "$T/req.log" >&2; fail "cannot make the server's certificate"; }
openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" \
  -out "$T/ca.pem" -subj /CN=trunk-ca -days 2 >/dev/null 2>&1 || fail "cannot make the client CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/client.key" \
  -out "$T/client.csr" -subj /CN=trunk >/dev/null 2>&1 || fail "cannot make the client's request"
openssl x509 -req -in "$T/client.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
  -days 2 -out "$T/client.pem" >/dev/null 2>&1 || fail "cannot issue the client's certificate"

# kamailio_cfg WORKERS KEY MTLS: kamailio.cfg on a free port ($PORT).
kamailio_cfg() {
  local workers=$1 key=$2 mtls=$3
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$T/kamailio.cfg" <<CFG
#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=1
tcp_children=$workers
disable_tcp=no
enable_tls=yes
listen=tls:127.0.0.1:$PORT
mpath="$KMODS/"
loadmodule "sl.so"
loadmodule "tls.so"
modparam("tls", "private_key", "$key")
modparam("tls", "certificate", "$T/sip-tls.pem")
modparam("tls", "tls_method", "TLSv1.2+")
modparam("tls", "verify_certificate", $mtls)
modparam("tls", "require_certificate", $mtls)
modparam("tls", "ca_list", "$T/ca.pem")
request_route {
  if (method == "OPTIONS") {
    sl_send_reply("200", "OK");
    exit;
  }
  sl_send_reply("403", "Forbidden");
}
CFG
}

KPID=
stop_kamailio() {
  if [[ -n $KPID ]]; then
    kill -TERM "$KPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null || true
    wait "$KPID" 2>/dev/null || true
    KPID=
  fi
}
trap 'rc=$?; stop_kamailio; (exit $rc); cleanup' EXIT

# start_kamailio CNF: Kamailio in the foreground (-DD: it forks its
# workers but not itself), logging to $T/kamailio.log; returns 1 if it
# does not listen within 20 s.
start_kamailio() {
  : > "$T/kamailio.log"
  OPENSSL_CONF=$1 "$KAMAILIO" -DD -E -m 64 -M 8 -w "$T" -f "$T/kamailio.cfg" \
    >"$T/kamailio.log" 2>&1 &
  KPID=$!
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$KPID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# pids_since LINE OP KEY: the pids of keyd's audit lines after line LINE
# with op OP (and key KEY) that succeeded, one a line, sorted.
pids_since() {
  tail -n +"$(($1 + 1))" "$T/audit.jsonl" |
    grep "\"op\":\"$2\",\"key\":\"$3\"" | grep '"result":"ok"' |
    sed -n 's/.*"pid":\([0-9][0-9]*\),.*/\1/p' | sort -u
}

# one_start WORKERS CNF KEY: one start of Kamailio, its connections, and
# its check. Returns 0 if it served every connection and every worker
# that loaded the key signed.
one_start() {
  local workers=$1 cnf=$2 key=$3 line wave loaders signers missing
  line=$(wc -l < "$T/audit.jsonl")
  kamailio_cfg "$workers" "$key" 0
  if ! start_kamailio "$cnf"; then
    echo "  start: Kamailio did not listen: $(grep -m1 -iE 'error|segv|signal' "$T/kamailio.log" || tail -n1 "$T/kamailio.log")"
    stop_kamailio
    return 1
  fi
  for wave in 1 2 3 4 5 6; do
    if ! timeout 60 python3 "$CLIENT" 127.0.0.1 "$PORT" "$T/sip-tls.pem" $((2 * workers)) \
      >"$T/client.out" 2>&1; then
      echo "  wave $wave: $(grep -c '^ok' "$T/client.out") of $((2 * workers)) served; $(grep -m1 -v '^ok' "$T/client.out")"
      stop_kamailio
      return 1
    fi
    # Every process that loaded keyd:sip-tls through the provider (one
    # pubkey request each) must have signed a handshake.
    loaders=$(pids_since "$line" pubkey sip-tls)
    signers=$(pids_since "$line" sign sip-tls)
    missing=$(comm -23 <(printf '%s\n' "$loaders") <(printf '%s\n' "$signers"))
    [[ -z $missing ]] && break
  done
  stop_kamailio
  if [[ -n $missing && $key == /uri:keyd:* ]]; then
    echo "  workers that loaded the key and never signed: $(echo $missing)"
    return 1
  fi
  LAST_SIGNERS=$(printf '%s\n' "$signers" | grep -c . || true)
  LAST_LOADERS=$(printf '%s\n' "$loaders" | grep -c . || true)
  LAST_WAVES=$wave
  return 0
}

# --- keyd's provider: 1 and 8 workers.
for workers in 1 8; do
  ok=0
  for ((i = 1; i <= STARTS; i++)); do
    if one_start "$workers" "$T/keyd-provider.cnf" /uri:keyd:sip-tls; then
      ok=$((ok + 1))
      [[ $LAST_SIGNERS -ge $workers ]] ||
        fail "$workers workers: only $LAST_SIGNERS processes signed (start $i)"
      echo "  start $i: $LAST_LOADERS processes loaded the key, $LAST_SIGNERS signed, in $LAST_WAVES wave(s) of $((2 * workers)) connections"
    else
      echo "start $i of $STARTS with $workers workers failed; Kamailio's log:" >&2
      tail -n 20 "$T/kamailio.log" >&2
    fi
  done
  [[ $ok -eq $STARTS ]] || fail "keyd's provider, $workers TLS workers: $ok of $STARTS starts served"
  pass "keyd's provider, $workers TLS worker(s): $ok of $STARTS starts served every TLS 1.3 and 1.2 OPTIONS (200), every worker's signatures in keyd's audit log"
done

# --- mutual TLS: Kamailio requires and verifies client certificates
# while keyd's provider is loaded.
kamailio_cfg 2 /uri:keyd:sip-tls 1
start_kamailio "$T/keyd-provider.cnf" || { cat "$T/kamailio.log" >&2; fail "Kamailio (mutual TLS) did not start"; }
timeout 60 python3 "$CLIENT" 127.0.0.1 "$PORT" "$T/sip-tls.pem" 4 "$T/client.pem" "$T/client.key" \
  >"$T/client.out" 2>&1 || { cat "$T/client.out" >&2; tail -n 20 "$T/kamailio.log" >&2; fail "mutual TLS: the client with a certificate was not served"; }
if timeout 60 python3 "$CLIENT" 127.0.0.1 "$PORT" "$T/sip-tls.pem" 2 >"$T/client.out" 2>&1; then
  stop_kamailio
  fail "mutual TLS: a client without a certificate was served"
fi
stop_kamailio
pass "mutual TLS: Kamailio verified the client's certificate (its signature by the default provider) and served its OPTIONS; a client without one was refused"

# --- the comparison: pkcs11-provider over keyd-pkcs11.so, 8 workers.
# A start that fails may take up to 80 s to say so: the comparison stops
# trying after 150 s of this test, and says how many it tried.
if [[ -f $P11PROV && $P11_STARTS -gt 0 ]]; then
  ok=0
  for ((i = 1; i <= P11_STARTS; i++)); do
    if ((SECONDS > 150)); then
      P11_STARTS=$((i - 1))
      break
    fi
    if one_start 8 "$T/pkcs11-provider.cnf" "/uri:pkcs11:token=$P11LABEL;object=sip-tls;type=private"; then
      ok=$((ok + 1))
    fi
  done
  pass "for comparison, pkcs11-provider over keyd-pkcs11.so, 8 TLS workers: $ok of $P11_STARTS starts served every connection (keyd's provider: $STARTS of $STARTS)"
fi
