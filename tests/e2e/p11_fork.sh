#!/usr/bin/env bash
# Fork: a process initializes the module, logs in and signs, then forks.
# The first child signs with the inherited session and key handles
# without calling C_Initialize (as pre-forking servers do), over its own
# connection to keyd; the second child calls C_Initialize and signs; the
# parent signs again afterwards.
source "$KEYD_SOURCE_DIR/tests/e2e/p11lib.sh"

p11_keys
start_keyd

"$P11DRIVE" "$MODULE" fork sip-tls "$T/ec.pem" || fail "p11drive fork"
pass "parent, inheriting child and re-initializing child all signed"

pids=$(grep '"op":"sign","key":"sip-tls"' "$T/audit.jsonl" |
  grep '"result":"ok"' | sed 's/.*"pid":\([0-9]*\).*/\1/' | sort -u | wc -l)
[[ $pids -eq 3 ]] || fail "keyd saw signatures from $pids processes, not 3"
pass "keyd's audit log shows signatures from 3 processes"
