#!/usr/bin/env bash
# rotation_nginx.sh: docs/rotation.md's TLS recipe, step by step, with
# Debian's nginx as the session controller's TLS front (its set-up is
# nginx.sh's: libp11's engine with keyd-pkcs11.so). While curl makes TLS
# handshakes without pause, a new key is made on the token (keyd-backup
# keygen), served beside the old one under a new name (keydctl reload),
# gets a certificate over a CSR signed through keyd-pkcs11.so, nginx
# switches to it (nginx -s reload), and the old key leaves keyd's
# configuration (keydctl reload). No handshake may fail; afterwards nginx
# presents the new certificate and keyd's audit log shows the workers
# signing with the new key only.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

need_root
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] ||
  { echo "SKIP: nginx is not installed (scripts/deps.sh installs nginx)"; exit 77; }
command -v curl >/dev/null ||
  { echo "SKIP: curl is not installed (scripts/deps.sh installs curl)"; exit 77; }

WUSER=www-data
WUID=$(id -u "$WUSER") || fail "no user $WUSER"
NGX_PID= LOOP_PID=
stop_nginx() {
  local workers p
  if [[ -n $NGX_PID ]] && kill -0 "$NGX_PID" 2>/dev/null; then
    workers=$(ps -o pid= --ppid "$NGX_PID" || true)
    kill -QUIT "$NGX_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$NGX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGX_PID" 2>/dev/null || true
    wait "$NGX_PID" 2>/dev/null || true
    for p in $workers; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  NGX_PID=
}
trap 'rc=$?; [[ -z $LOOP_PID ]] || kill "$LOOP_PID" 2>/dev/null; stop_nginx; set +e; (exit $rc); cleanup' EXIT

make_token "$TOKEN"
write_pin
kb() { "$KEYD_BUILD_DIR/keyd/keyd-backup" keygen --module "$SOFTHSM_MODULE" \
  --token "pkcs11:token=$TOKEN" --pin-file "$T/pin" "$@" >/dev/null; }
kb --type ec:p256 --label wss-tls --id 01 --usage sign
sandbox=yes
[[ -n ${KEYD_P11_PRELOAD:-} ]] && sandbox=no
# conf KEY...: the keys nginx's master (root) and workers may use.
conf() {
  {
    echo "sandbox = $sandbox"
    echo "socket_group = $WUSER"
    for k in "$@"; do
      printf '[key %s]\nuri = pkcs11:token=%s;object=%s;type=private\nops = sign\n' \
        "$k" "$TOKEN" "$k"
    done
    printf '[client nginx-master]\nuid = 0\nkeys = %s\nops = sign, reload\n' "$(IFS=,; echo "$*")"
    printf '[client nginx]\nuid = %s\nkeys = %s\nops = sign\n' "$WUSER" "$(IFS=,; echo "$*")"
  } | write_config
}
conf wss-tls
mkdir -p "$T/state"
start_keyd
printf 'socket = %s\ntoken_label = %s\n' "$KEYD_SOCKET" "$P11LABEL" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf
p11_engine_conf
sed -i 's/^init = 0$/init = 1/' "$T/openssl.cnf"
p11_ca
p11_cert wss-tls "$T/wss-tls.pem"

N=$T/nginx
mkdir -p "$N/www" "$N/tmp"
echo "keyd wss front $$" > "$N/www/index.html"
chmod -R a+rX "$N"
# nginx_conf KEY: nginx.conf with KEY's certificate and key.
nginx_conf() {
  cat > "$N/nginx.conf" <<CONF
user $WUSER;
worker_processes 2;
daemon off;
pid $N/nginx.pid;
error_log $N/error.log notice;
env OPENSSL_CONF;
env KEYD_PKCS11_CONF;
events { worker_connections 64; }
http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT ssl;
        server_name localhost;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $T/$1.pem;
        ssl_certificate_key "engine:pkcs11:pkcs11:token=$P11LABEL;object=$1;type=private";
        ssl_session_cache off;
        ssl_session_tickets off;
        root $N/www;
    }
}
CONF
}
ngx() { "${EXT[@]}" env OPENSSL_CONF="$T/openssl.cnf" "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/error.log" "$@"; }
PORT=$((20000 + RANDOM % 40000))
nginx_conf wss-tls
ngx >"$N/stderr" 2>&1 &
NGX_PID=$!
get() {
  curl -sS --max-time 10 --cacert "$T/ca.pem" -o "$T/body.$1" -w '%{http_code}' \
    --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/" 2>&1
}
for _ in $(seq 1 100); do [[ $(get 0) == 200 ]] && break; sleep 0.1; done
[[ $(get 0) == 200 ]] || { cat "$N/stderr" "$N/error.log" >&2; fail "nginx does not serve"; }
# served_key: the public key of the certificate nginx presents.
served_key() {
  openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$T/ca.pem" \
    </dev/null 2>/dev/null | openssl x509 -noout -pubkey
}
openssl x509 -in "$T/wss-tls.pem" -noout -pubkey > "$T/old.pub"
[[ $(served_key) == "$(cat "$T/old.pub")" ]] || fail "nginx does not present the first certificate"

# Handshakes without pause, each a new TLS session signed by keyd.
( n=0 bad=0
  while [[ ! -e $T/loop.stop ]]; do
    r=$(get 1)
    if [[ $r == 200 ]]; then n=$((n + 1)); else bad=$((bad + 1)); echo "failed: $r" >> "$T/loop.err"; fi
  done
  echo "$n $bad" > "$T/loop.out" ) &
LOOP_PID=$!
sleep 1

# Step 1: a new key on the token, served beside the old one.
kb --type ec:p256 --label wss-tls-2 --id 02 --usage sign
conf wss-tls wss-tls-2
"$KEYDCTL" reload > "$T/rl.out" || fail "reload with wss-tls-2 refused"
grep -q "keys +wss-tls-2" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
# Step 2: its certificate, over a CSR signed through keyd-pkcs11.so.
p11_cert wss-tls-2 "$T/wss-tls-2.pem"
# Step 3: nginx switches (its master loads the new key; new workers).
nginx_conf wss-tls-2
ngx -s reload || fail "nginx -s reload"
openssl x509 -in "$T/wss-tls-2.pem" -noout -pubkey > "$T/new.pub"
for _ in $(seq 1 100); do [[ $(served_key) == "$(cat "$T/new.pub")" ]] && break; sleep 0.1; done
[[ $(served_key) == "$(cat "$T/new.pub")" ]] || fail "nginx does not present the new certificate"
# Step 4: the old key leaves keyd's configuration.
sleep 1
conf wss-tls-2
"$KEYDCTL" reload > "$T/rl.out" || fail "reload without wss-tls refused"
grep -q "keys .*-wss-tls" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
mark=$(wc -l < "$T/audit.jsonl")
sleep 1
touch "$T/loop.stop"
wait "$LOOP_PID"; LOOP_PID=
read -r ok bad < "$T/loop.out"
[[ $bad -eq 0 ]] || fail "$bad of $((ok + bad)) handshakes failed: $(head -3 "$T/loop.err")"
(( ok >= 20 )) || fail "only $ok handshakes during the rotation"
tail -n +"$((mark + 1))" "$T/audit.jsonl" | grep '"op":"sign"' | grep "\"uid\":$WUID[,}]" > "$T/after" || true
[[ -s $T/after ]] || fail "no worker signature after the old key left"
! grep -v '"key":"wss-tls-2"' "$T/after" | has . || fail "a worker signed with another key than wss-tls-2"
! grep -v '"result":"ok"' "$T/after" | has . || fail "a worker's signature failed after the rotation"
pass "TLS key and certificate rotated through keyd and nginx: $ok handshakes, none failed"
