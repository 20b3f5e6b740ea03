#!/usr/bin/env bash
# conn_share.sh: one client cannot take the whole connection pool. With no
# max_connections of its own, a [client] may hold the global
# max_connections divided by the number of [client] sections: client A
# opens connections until it is refused, and client B, another uid, still
# connects and signs (the signature verified by OpenSSL). A client's own
# max_connections overrides that share.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

NOGROUP=$(getent group nogroup | cut -d: -f3) || fail "no group nogroup"
B_UID=40003
TOKEN=share
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
write_pin
export_pub 01 "$T/ec.pem"
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
chmod 0644 "$T/msg"

# conf [A's own max_connections line]: a global limit of 8, two clients.
conf() {
  write_config <<CONF
socket_group = nogroup
max_connections = 8
[key ec]
uri = pkcs11:token=$TOKEN;object=ec;type=private
ops = sign
[client a]
uid = 0
keys = ec
ops = sign
${1:-}
[client b]
uid = $B_UID
keys = ec
ops = sign
CONF
}

# fill MAX: client A (root) opens connections, each in a kd_raw that says
# hello and holds it, until one is refused (closed before its hello
# reply) or MAX + 1 are held. Sets HELD to the count held and HOLDERS to
# the holders' pids.
HOLDERS=()
fill() {
  local max=$1 i pid
  HELD=0
  for ((i = 1; i <= max + 1; i++)); do
    # Emptied here, not by the job's redirection: that happens after the
    # fork, so the loop below could read an earlier round's "held".
    : > "$T/hold.$i"
    timeout 30 "$KD_RAW" "$KEYD_SOCKET" hold 1 >> "$T/hold.$i" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && ! grep -q '^held' "$T/hold.$i"; do
      sleep 0.02
    done
    if ! grep -q '^held' "$T/hold.$i"; then
      # Closed before the hello was sent (EPIPE, ECONNRESET) or read.
      grep -Eq "connection closed|Broken pipe|Connection reset" "$T/hold.$i" ||
        fail "connection $i of client a: $(cat "$T/hold.$i")"
      wait "$pid" 2>/dev/null || true
      return 0
    fi
    HOLDERS+=("$pid")
    HELD=$i
  done
}
release() {
  local pid
  for pid in "${HOLDERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${HOLDERS[@]}"; do wait "$pid" 2>/dev/null || true; done
  HOLDERS=()
}

# b_signs: client B connects and signs; OpenSSL verifies the signature.
b_signs() {
  rm -f "$T/sig"
  as_user $B_UID "$NOGROUP" "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" > "$T/sig" ||
    fail "client b could not sign while client a held $HELD connections"
  verify_sig ecdsa-sha256 "$T/ec.pem" "$T/msg" "$T/sig" >/dev/null ||
    fail "client b's signature does not verify"
}

# 1. The default share: 8 / 2 clients = 4 connections for A.
conf
start_keyd
fill 8
b_signs
[[ $HELD -eq 4 ]] || fail "client a held $HELD connections of 8 before it was refused, want 4"
wait_for "$T/audit.jsonl" "the client's max_connections reached (4)"
release
stop_keyd
grep '"event":"busy"' "$T/audit.jsonl" | has '"client":"a"' ||
  fail "the refusal of client a is not audited as busy for client a"
pass "default share: client a refused at 4 of 8, client b still signs"

# 2. A's own max_connections overrides the share.
conf "max_connections = 6"
start_keyd
fill 8
b_signs
[[ $HELD -eq 6 ]] || fail "client a with max_connections = 6 held $HELD connections, want 6"
release
stop_keyd
pass "max_connections = 6 of client a: refused at 6, client b still signs"
