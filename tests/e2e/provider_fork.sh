#!/usr/bin/env bash
# keyd's OpenSSL provider (keyd.so) in a pre-forking server whose OpenSSL
# memory is shared between processes, as Kamailio's tls module makes it:
# tests/e2e/provider_fork.c, with keyd's keys on a fresh SoftHSM2 token.
#   - fork: a key loaded before fork signs in 4 children from 4 threads
#     each (1600 signatures, EC and Ed25519 keys), every one verified by
#     the parent with the token's public key, and keyd's audit log shows
#     signatures from every child's pid;
#   - sibling: a key object loaded in one child signs in a sibling forked
#     from the parent;
#   - restart: keyd restarts in the middle of a long-lived process, whose
#     next signatures with the same key object succeed.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

PROG=$KEYD_BUILD_DIR/tests/provider_fork
PROVDIR=$KEYD_BUILD_DIR/client/provider
[[ -x $PROG ]] || fail "$PROG is not built"
[[ -f $PROVDIR/keyd.so ]] || fail "$PROVDIR/keyd.so is not built (target keyd-provider)"
export OPENSSL_MODULES=$PROVDIR
# No system config: the program loads the providers itself.
export OPENSSL_CONF=/dev/null

p11_keys
start_keyd

run() { timeout 120 "$PROG" "$@"; }

for k in "sip-tls ec.pem ecdsa" "sip-ed ed.pem ed25519"; do
  read -r key pub mech <<< "$k"
  run fork "$key" "$T/$pub" >"$T/fork.out" 2>"$T/fork.err" ||
    { cat "$T/fork.out" "$T/fork.err" >&2; fail "provider_fork fork $key"; }
  grep -q '^verified 1600 signatures from 4 children$' "$T/fork.out" ||
    { cat "$T/fork.out" >&2; fail "provider_fork fork $key: not every signature verified"; }
  for pid in $(sed -n 's/^child \([0-9][0-9]*\)$/\1/p' "$T/fork.out"); do
    n=$(grep -c "\"pid\":$pid,\"op\":\"sign\",\"key\":\"$key\",\"mech\":\"$mech\",\"result\":\"ok\"" \
      "$T/audit.jsonl" || true)
    [[ $n -eq 400 ]] || fail "keyd audited $n signatures from child $pid, not 400"
  done
  pass "$key: loaded before fork, 1600 signatures from 4 children x 4 threads in shared OpenSSL memory, verified, each child's 400 in keyd's audit log"
done

run sibling sip-tls "$T/ec.pem" >"$T/sib.out" 2>"$T/sib.err" ||
  { cat "$T/sib.out" "$T/sib.err" >&2; fail "provider_fork sibling"; }
read -r _ _ a _ _ b _ < "$T/sib.out" || true
grep -q "\"pid\":$b,\"op\":\"sign\",\"key\":\"sip-tls\"" "$T/audit.jsonl" ||
  fail "keyd audited no signature from the second sibling ($b)"
pass "a key object loaded in one child ($a) signs in a sibling ($b), verified"

# restart: keyd stops and starts under the process, which reloads nothing.
coproc PF { timeout 120 "$PROG" restart sip-tls "$T/ec.pem" 2>"$T/restart.err"; }
# bash forgets PF_PID once the coprocess has ended.
pf_pid=$PF_PID
read -r -t 60 line <&"${PF[0]}" || { cat "$T/restart.err" >&2; fail "provider_fork restart did not get ready"; }
[[ $line == ready ]] || fail "provider_fork restart said '$line'"
stop_keyd
start_keyd
echo go >&"${PF[1]}"
read -r -t 60 line <&"${PF[0]}" || true
wait "$pf_pid" || { cat "$T/restart.err" >&2; fail "provider_fork restart failed after keyd's restart"; }
[[ $line == "signed and verified after the restart" ]] || fail "provider_fork restart said '$line'"
pass "keyd restarted under a long-lived process: its next signatures succeed, verified"
