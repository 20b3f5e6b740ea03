#!/usr/bin/env bash
# reload_failover.sh: a reload with a failover token checks the new keys on
# both tokens before anything changes. A key added on both applies (both
# token processes are replaced); a key that the failover token holds in
# another version, or not at all, refuses the reload with that reason, and
# both tokens serve on with the running configuration.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

make_token A
make_token B
# put_key LABEL ID TOKEN...: one EC key, the same on each token.
put_key() {
  local label=$1 id=$2 tok; shift 2
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$label.key" 2>/dev/null
  openssl pkey -in "$T/$label.key" -outform DER -out "$T/$label.der"
  openssl pkey -in "$T/$label.key" -pubout -out "$T/$label.pem"
  openssl pkey -in "$T/$label.key" -pubout -outform DER -out "$T/$label.pub.der"
  for tok in "$@"; do
    TOKEN=$tok p11 --write-object "$T/$label.der" --type privkey --label "$label" --id "$id" --usage-sign >/dev/null
    TOKEN=$tok p11 --write-object "$T/$label.pub.der" --type pubkey --label "$label" --id "$id" >/dev/null
  done
}
put_key k1 01 A B
put_key k2 02 A B
put_key k3 03 B        # B's k3 ...
cp "$T/k3.pem" "$T/k3-B.pem"
put_key k3 03 A        # ... is another key than A's
put_key k4 04 A        # A only
write_pin
TOKEN=A
conf() {
  {
    echo "failover_token = pkcs11:token=B"
    for k in "$@"; do
      printf '[key %s]\nuri = pkcs11:token=A;object=%s;type=private\nops = sign\n' "$k" "$k"
    done
    echo "[client me]"
    echo "uid = $(id -u)"
    echo "keys = $(IFS=,; echo "$*")"
    echo "ops = sign, status, reload"
  } | write_config
}
printf 'OPTIONS sip:a@example.com SIP/2.0\r\n' > "$T/msg"
sign_ok() {
  "$KEYDCTL" sign "$1" -a ecdsa-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
    fail "sign $1: $(cat "$T/err")"
  verify_sig ecdsa-sha256 "$T/$1.pem" "$T/msg" "$T/sig" >/dev/null || fail "bad signature by $1"
}

conf k1
start_keyd
sign_ok k1
before=$(token_pids | sort | tr '\n' ' ')
[[ $(wc -w <<< "$before") -eq 2 ]] || fail "not two token processes: $before"

conf k1 k2
"$KEYDCTL" reload > "$T/rl.out" || fail "adding k2 was refused"
sign_ok k2
for _ in $(seq 50); do
  after=$(token_pids | sort | tr '\n' ' ')
  [[ $(wc -w <<< "$after") -eq 2 ]] && break
  sleep 0.1
done
for p in $before; do [[ " $after " != *" $p "* ]] || fail "token process $p was not replaced"; done
"$KEYDCTL" status | grep -c "serving\|standby" | has 2 || fail "status: $("$KEYDCTL" status)"
pass "a key on both tokens applies; both token processes are replaced"

conf k1 k2 k3
expect_fail "keydctl: reload: refused: the failover token does not hold the same keys as the primary" \
  "$KEYDCTL" reload
grep -q "failover token: key 'k3' on token 'B' has another public key" "$T/keyd.log" ||
  fail "keyd's log does not name k3"
conf k1 k2 k4
expect_fail "keydctl: reload: refused: the failover token cannot serve the new configuration: .*k4.* is not on token 'B'" \
  "$KEYDCTL" reload
sign_ok k2
[[ $(token_pids | sort | tr '\n' ' ') == "$after" ]] || fail "a refused reload left token processes changed"
pass "a key the failover token lacks or holds in another version refuses the reload"
stop_keyd
