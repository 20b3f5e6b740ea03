#!/usr/bin/env bash
# reload_load.sh: reloads under load. Four clients sign, decrypt and make
# and open SRTP keys without pause (two through libkeyd, two through
# keyd-pkcs11.so), each checking every result (signatures verified with
# the public key, RSA-OAEP plaintexts and SRTP keys compared). Meanwhile
# 20 reloads alternate between two valid configurations that differ only
# in what the load clients do not use, and 5 invalid ones are refused,
# each with its reason checked. No client request may fail.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

reload_client_setup
MODULE=$KEYD_BUILD_DIR/client/pkcs11/keyd-pkcs11.so
P11DRIVE=$KEYD_BUILD_DIR/tests/p11drive
[[ -x $P11DRIVE ]] || fail "$P11DRIVE is not built"

TOKEN=rlload
make_token $TOKEN
keygen EC:prime256v1 tls 01
keygen rsa:2048 rsa 02
keygen AES:32 kek 03 2>/dev/null
keygen EC:prime256v1 extra-a 04
keygen EC:prime256v1 extra-b 05
keygen EC:prime256v1 audit 06
write_pin
export_pub 01 "$T/tls.pem"
export_pub 02 "$T/rsa.pem"

# conf A|B: the keys the load uses, and one the load does not use (A:
# extra-a; B: extra-b and a client more).
conf() {
  {
    echo "audit_key = pkcs11:token=$TOKEN;object=audit;type=private"
    echo "[key tls]"
    echo "uri = pkcs11:token=$TOKEN;object=tls;type=private"
    echo "ops = sign"
    echo "[key rsa]"
    echo "uri = pkcs11:token=$TOKEN;object=rsa;type=private"
    echo "ops = decrypt"
    echo "[key kek]"
    echo "uri = pkcs11:token=$TOKEN;object=kek;type=secret-key"
    echo "ops = srtp-new, srtp-open"
    if [[ $1 == A ]]; then
      echo "[key extra]"
      echo "uri = pkcs11:token=$TOKEN;object=extra-a;type=private"
      echo "ops = sign"
    else
      echo "[key extra]"
      echo "uri = pkcs11:token=$TOKEN;object=extra-b;type=private"
      echo "ops = sign"
      echo "[key spare]"
      echo "uri = pkcs11:token=$TOKEN;object=extra-a;type=private"
      echo "ops = sign"
      echo "[client spare]"
      echo "uid = 40005"
      echo "keys = spare"
      echo "ops = sign"
    fi
    echo "[client root]"
    echo "uid = 0"
    echo "keys = tls, rsa, kek, extra"
    echo "ops = sign, decrypt, srtp-new, srtp-open, status, reload"
  } | write_config
}
printf 'socket = %s\ntoken_label = keyd\n' "$KEYD_SOCKET" > "$T/pkcs11.conf"
export KEYD_PKCS11_CONF=$T/pkcs11.conf

conf A
start_keyd
STOP=$T/stop
pids=()
for i in 1 2; do
  py "$CLIENT" load tls kek "$STOP" > "$T/py$i.out" 2>&1 &
  pids+=($!)
  "$P11DRIVE" "$MODULE" load tls "$T/tls.pem" rsa "$T/rsa.pem" "$STOP" > "$T/p11$i.out" 2>&1 &
  pids+=($!)
done
sleep 1

# Invalid configurations, each refused with its reason.
invalid() { # N: the N-th invalid variant of A, written to keyd.conf
  conf A
  case $1 in
    1) echo "ops = sign" >> "$T/keyd.conf"
       WHY="keyd.conf:[0-9]*: .*ops" ;;
    2) sed -i 's/object=extra-a;type=private/object=nowhere;type=private/' "$T/keyd.conf"
       WHY="the primary token cannot serve the new configuration: key 'extra'" ;;
    3) sed -i 's/^ops = srtp-new, srtp-open$/ops = sign/' "$T/keyd.conf"
       WHY="kek" ;;
    4) sed -i 's/^token_timeout.*//; 1a token_timeout = 999' "$T/keyd.conf"
       WHY="token_timeout cannot change on reload" ;;
    5) sed -i 's#^audit_log = .*#audit_log = '"$T"'/other.jsonl#' "$T/keyd.conf"
       WHY="audit_log cannot change on reload" ;;
  esac
}
start=$(date +%s)
bad=1
for i in $(seq 1 20); do
  if (( i % 2 )); then conf B; else conf A; fi
  h=$(sha256sum < "$T/keyd.conf" | cut -d' ' -f1)
  "$KEYDCTL" reload > "$T/rl.out" 2> "$T/rl.err" ||
    fail "reload $i refused: $(cat "$T/rl.err")"
  grep -q "^reloaded: sha256 $h, " "$T/rl.out" || fail "reload $i: $(cat "$T/rl.out")"
  if (( i % 4 == 0 )); then
    invalid $bad
    expect_fail "keydctl: reload: refused: .*$WHY" "$KEYDCTL" reload
    bad=$((bad + 1))
  fi
  sleep 0.2
done
(( bad == 6 )) || fail "$((bad - 1)) invalid configurations tried, not 5"
touch "$STOP"
for p in "${pids[@]}"; do wait "$p" || true; done
for f in "$T"/py1.out "$T"/py2.out "$T"/p111.out "$T"/p112.out; do
  grep -q "^ok [1-9][0-9]*$" "$f" || fail "$(basename "$f"): $(cat "$f")"
done
echo "rounds: $(cat "$T"/py*.out "$T"/p11*.out | tr '\n' ' ') in $(( $(date +%s) - start )) s"
[[ $(grep -c '"event":"reload",' "$T/audit.jsonl") -eq 20 ]] || fail "not 20 reload records"
[[ $(grep -c '"event":"reload-refused"' "$T/audit.jsonl") -eq 5 ]] || fail "not 5 reload-refused records"
grep '"event":"request"' "$T/audit.jsonl" | grep -v '"op":"reload"' | grep -v '"result":"ok"' |
  sed -n 1,3p | grep . && fail "client requests failed during the reloads"
stop_keyd
pass "4 clients under 20 reloads and 5 refusals: no request failed, every result checked"
