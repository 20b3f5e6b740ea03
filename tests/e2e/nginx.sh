#!/usr/bin/env bash
# Debian's nginx serves TLS with a key held by keyd, as the WSS front of a
# WebRTC session controller would: ssl_certificate_key "engine:pkcs11:..."
# through libp11's engine and keyd-pkcs11.so, exactly as docs/pkcs11.md's
# nginx section configures it (engine section with init = 1, the env
# lines, a quoted URI, a [client] for the workers' user). nginx runs from
# the test's own directory (-p, -c, its own pid and logs, 127.0.0.1 on a
# high port); a system nginx is never touched. curl fetches a page over
# TLS 1.3 and TLS 1.2 and checks it; then again after `nginx -s reload`,
# and again after keyd restarts. Each time keyd's audit log must show new
# signatures by the workers' uid from nginx worker processes.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

need_root
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] ||
  { echo "SKIP: nginx is not installed (scripts/deps.sh installs nginx)"; exit 77; }
command -v curl >/dev/null ||
  { echo "SKIP: curl is not installed (scripts/deps.sh installs curl)"; exit 77; }

# The workers' user: nginx's `user` directive and keyd's [client nginx].
WUSER=www-data
WUID=$(id -u "$WUSER") || fail "no user $WUSER"
KEY=wss-tls
URI="pkcs11:token=$P11LABEL;object=$KEY;type=private"
NGX_PID=

stop_nginx() {
  local workers p
  if [[ -n $NGX_PID ]] && kill -0 "$NGX_PID" 2>/dev/null; then
    workers=$(ps -o pid= --ppid "$NGX_PID" || true)
    kill -QUIT "$NGX_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$NGX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGX_PID" 2>/dev/null || true
    wait "$NGX_PID" 2>/dev/null || true
    # Workers a killed master left behind.
    for p in $workers; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  NGX_PID=
}
trap 'rc=$?; stop_nginx; set +e; (exit $rc); cleanup' EXIT

# --- keyd: one ECDSA P-256 key; root (the nginx master, which loads the
# key, and this test's openssl req) and the workers' user are clients, and
# the workers' user's group is the socket's.
make_token "$TOKEN"
keygen EC:prime256v1 "$KEY" 01
export_pub 01 "$T/ec.pem"
write_pin
sandbox=yes
[[ -n ${KEYD_P11_PRELOAD:-} ]] && sandbox=no
# The workers connect as $WUSER: the socket's group must let them in.
write_config <<CONF
sandbox = $sandbox
socket_group = $WUSER

[key $KEY]
uri = pkcs11:token=$TOKEN;object=$KEY;type=private
ops = sign

[client nginx-master]
uid = 0
keys = $KEY
ops = sign

[client nginx]
uid = $WUSER
keys = $KEY
ops = sign
CONF
mkdir -p "$T/state"
start_keyd

# --- the module's config and the engine's OpenSSL config (p11lib.sh's,
# with init = 1: nginx needs the engine initialised).
printf 'socket = %s\ntoken_label = %s\n' "$KEYD_SOCKET" "$P11LABEL" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf
p11_engine_conf
sed -i 's/^init = 0$/init = 1/' "$T/openssl.cnf"
grep -q '^init = 1$' "$T/openssl.cnf" || fail "no init line in $T/openssl.cnf"
p11_ca
p11_cert "$KEY" "$T/$KEY.pem"
pass "certificate issued over a request signed through the engine"

# --- nginx's own prefix in the test's directory.
N=$T/nginx
mkdir -p "$N/www" "$N/tmp"
echo "keyd wss front $$" > "$N/www/index.html"
chmod -R a+rX "$N"

# sign_lines: keyd's successful signatures with the key by the workers' uid.
sign_lines() {
  grep "\"op\":\"sign\",\"key\":\"$KEY\"" "$T/audit.jsonl" | grep '"result":"ok"' |
    grep "\"uid\":$WUID[,}]" || true
}

# fetch WHAT: a page over TLS 1.3 and over TLS 1.2, each a new handshake
# that keyd's key signs; the workers' signatures must show in keyd's audit
# log, from nginx worker processes (children of the master).
fetch() {
  local what=$1 v before after pids p
  for v in 1.3 1.2; do
    before=$(sign_lines | wc -l)
    curl -sS --max-time 10 --cacert "$T/ca.pem" "--tlsv$v" --tls-max "$v" \
      -w '%{http_code}\n' -o "$T/body" "https://localhost:$PORT/" \
      --resolve "localhost:$PORT:127.0.0.1" >"$T/curl.out" 2>&1 ||
      { cat "$T/curl.out" "$N/error.log" >&2; fail "$what: curl over TLS $v"; }
    [[ $(cat "$T/curl.out") == 200 ]] || fail "$what: TLS $v: HTTP $(cat "$T/curl.out")"
    cmp -s "$T/body" "$N/www/index.html" || fail "$what: TLS $v: wrong page: $(head -c 200 "$T/body")"
    for _ in $(seq 1 40); do
      after=$(sign_lines | wc -l)
      [[ $after -gt $before ]] && break
      sleep 0.05
    done
    [[ $after -gt $before ]] ||
      fail "$what: TLS $v: keyd audited no signature by uid $WUID ($WUSER)"
    pids=$(sign_lines | tail -n +$((before + 1)) | sed 's/.*"pid":\([0-9]*\).*/\1/' | sort -u)
    for p in $pids; do
      [[ $(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ') == "$NGX_PID" ]] ||
        fail "$what: TLS $v: pid $p that signed is not an nginx worker"
    done
    pass "$what: TLS $v page served; keyd signed for nginx worker $pids as uid $WUID"
  done
}

# A high port on 127.0.0.1 that nothing listens on (tried again if nginx
# finds it taken after all).
start_nginx() {
  local try i
  for try in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 40000))
    ss -Hltn "sport = :$PORT" 2>/dev/null | has . && continue
    sed "s/@PORT@/$PORT/" "$N/nginx.conf.in" > "$N/nginx.conf"
    : > "$N/error.log"
    "${EXT[@]}" env OPENSSL_CONF="$T/openssl.cnf" \
      "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stderr" 2>&1 &
    NGX_PID=$!
    for i in $(seq 1 100); do
      kill -0 "$NGX_PID" 2>/dev/null || break
      curl -s -o /dev/null --max-time 2 --cacert "$T/ca.pem" \
        --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/" && return 0
      sleep 0.1
    done
    if ! kill -0 "$NGX_PID" 2>/dev/null; then
      wait "$NGX_PID" || true
      NGX_PID=
      grep -q "Address already in use" "$N/error.log" "$N/stderr" && continue
    fi
    cat "$N/stderr" "$N/error.log" >&2
    fail "nginx did not serve on 127.0.0.1:$PORT"
  done
  fail "no free port for nginx"
}

cat > "$N/nginx.conf.in" <<CONF
user $WUSER;
worker_processes 2;
daemon off;
pid $N/nginx.pid;
error_log $N/error.log notice;

# nginx clears its workers' environment: keep what libp11's engine and
# keyd-pkcs11.so read.
env OPENSSL_CONF;
env KEYD_PKCS11_CONF;

events {
    worker_connections 64;
}

http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;

    server {
        listen 127.0.0.1:@PORT@ ssl;
        server_name localhost;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $T/$KEY.pem;
        ssl_certificate_key "engine:pkcs11:$URI";
        ssl_session_cache off;
        ssl_session_tickets off;
        root $N/www;
    }
}
CONF

start_nginx
workers=$(ps -o uid=,pid= --ppid "$NGX_PID" | awk -v u="$WUID" '$1 == u { n++ } END { print n + 0 }')
[[ $workers -eq 2 ]] || { ps -o user,uid,pid,ppid,args --ppid "$NGX_PID" >&2; fail "not 2 workers as $WUSER"; }
pass "nginx serves on 127.0.0.1:$PORT; 2 workers run as $WUSER (uid $WUID)"
fetch "start"

# Reload: the master reads its config and loads the key again, new workers
# replace the old ones. `nginx -s reload` parses the whole config, the key
# too, before it signals the master: it needs the engine's config as well
# (without it: "ENGINE_load_private_key() failed ... not initialised").
old=$(ps -o pid= --ppid "$NGX_PID" | sort | tr '\n' ' ')
"${EXT[@]}" env OPENSSL_CONF="$T/openssl.cnf" \
  "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/error.log" -s reload ||
  fail "nginx -s reload"
for _ in $(seq 1 100); do
  new=$(ps -o pid= --ppid "$NGX_PID" | sort | tr '\n' ' ')
  n=$(ps -o uid= --ppid "$NGX_PID" | awk -v u="$WUID" '$1 == u { n++ } END { print n + 0 }')
  # Old workers gone, two new ones up.
  gone=1
  for p in $old; do [[ " $new " == *" $p "* ]] && gone=0; done
  [[ $gone -eq 1 && $n -eq 2 ]] && break
  sleep 0.1
done
[[ $gone -eq 1 && $n -eq 2 ]] || fail "nginx reload: workers not replaced ($old -> $new)"
pass "nginx reloaded: new workers $new"
fetch "after reload"

# keyd restarts: the workers' sessions and key handles outlive it; their
# next handshakes reach the new keyd.
stop_keyd
start_keyd
fetch "after keyd restart"

kill -0 "$NGX_PID" 2>/dev/null || fail "nginx exited"
! grep -E "\[(emerg|alert|crit)\]" "$N/error.log" ||
  fail "nginx logged errors"
pass "nginx logged no emerg, alert or crit"
