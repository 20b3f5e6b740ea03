#!/usr/bin/env bash
# policy.sh: default deny, judged on the kernel's credentials of real
# peers (setpriv runs keydctl and kd_raw as other uids and groups). A peer
# no [client] names is closed before a byte and audited; a client may do
# op X on key K only if K is in its keys, X in its ops and X in K's ops;
# a gid matches through a supplementary group; groups naming two clients
# match none; the rate limit holds across connections.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

NOGROUP=$(getent group nogroup | cut -d: -f3) || fail "no group nogroup"
NOBODY=65534
TOKEN=poltest
make_token $TOKEN
keygen EC:prime256v1 signer 01
keygen rsa:2048 enc 02
keygen EC:prime256v1 other 03
write_pin
# Every peer below reaches the socket through group nogroup (the socket
# is root:nogroup 0660 in a root:nogroup 0750 directory); the policy then
# tells them apart by uid or by another group.
write_config <<CONF
socket_group = nogroup
[key signer]
uri = pkcs11:token=$TOKEN;object=signer;type=private
ops = sign
[key enc]
uri = pkcs11:token=$TOKEN;object=enc;type=private
ops = decrypt
[key other]
uri = pkcs11:token=$TOKEN;object=other;type=private
ops = sign
[client admin]
uid = 0
keys = signer, enc, other
ops = sign, decrypt, status
[client nosign]
uid = 40002
keys = signer
ops = decrypt
[client signer]
uid = 40003
keys = signer, enc
ops = sign, decrypt
[client grp]
gid = 40100
keys = signer
ops = sign
[client grp2]
gid = 40101
keys = other
ops = sign
[client slow]
uid = 40004
keys = signer
ops = sign
rate = 1/m
CONF
start_keyd
SOCK=$T/run/keyd.sock
[[ $(stat -c '%U:%G %a' "$SOCK") == "root:nogroup 660" ]] ||
  fail "socket is $(stat -c '%U:%G %a' "$SOCK")"
[[ $(stat -c '%U:%G %a' "$T/run") == "root:nogroup 750" ]] ||
  fail "socket directory is $(stat -c '%U:%G %a' "$T/run")"
printf 'REGISTER sip:example.com SIP/2.0\r\n' > "$T/msg"
chmod 0644 "$T/msg"
export_pub 01 "$T/signer.pem"

audit_lines() { wc -l < "$T/audit.jsonl"; }

# 1. An unknown peer: closed without a byte (kd_raw), and audited with
#    its credentials.
before=$(audit_lines)
as_user $NOBODY $NOGROUP "$KD_RAW" "$SOCK" denied || fail "kd_raw denied as nobody"
wait_for "$T/audit.jsonl" '"event":"denied-peer"'
line=$(tail -n +"$((before + 1))" "$T/audit.jsonl" | grep '"event":"denied-peer"' | tail -1)
[[ $(json_field "$line" uid) == "$NOBODY" && $(json_field "$line" gid) == "$NOGROUP" ]] ||
  fail "denied-peer line: $line"
[[ $(json_field "$line" result) == "permission denied by policy" ]] || fail "result: $line"
[[ $(json_field "$line" detail) == "no [client] matches the peer" ]] || fail "detail: $line"
[[ -z $(json_field "$line" client) ]] || fail "a client named for an unknown peer: $line"
[[ $(json_field "$line" pid) -gt 0 ]] || fail "no pid: $line"
# ...and what keydctl tells that peer.
expect_error "keydctl: sign signer: connection closed: keyd at $SOCK closed the connection at hello: uid $NOBODY is probably not a client in keyd's policy (see keyd's log)" \
  as_user $NOBODY $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg"
# A peer outside the socket's group cannot even connect.
expect_error "keydctl: list: cannot connect to keyd: cannot connect to $SOCK: Permission denied (is this user in keyd's socket_group?)" \
  as_user 40003 40003 "$KEYDCTL" list
pass "unknown peer denied"

# 2. The client's ops lack sign.
expect_error "keydctl: sign signer: permission denied by policy: client 'nosign' may not sign" \
  as_user 40002 $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg"
# 3. The key's ops lack the op (the client may sign).
expect_error "keydctl: sign enc: permission denied by policy: key 'enc' is not for sign" \
  as_user 40003 $NOGROUP "$KEYDCTL" sign enc -a rsa-pkcs1-sha256 -i "$T/msg"
# 4. A key outside the client's keys, and a key that does not exist.
expect_error "keydctl: sign other: permission denied by policy: client 'signer' may not use key 'other'" \
  as_user 40003 $NOGROUP "$KEYDCTL" sign other -a ecdsa-sha256 -i "$T/msg"
expect_error "keydctl: pubkey other: permission denied by policy: this client may not use key 'other'" \
  as_user 40003 $NOGROUP "$KEYDCTL" pubkey other
expect_error "keydctl: sign nope: unknown key: no key named 'nope'" \
  as_user 40003 $NOGROUP "$KEYDCTL" sign nope -a ecdsa-sha256 -i "$T/msg"
# The same client may sign with its own key, and that verifies.
as_user 40003 $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg" > "$T/sig" ||
  fail "client signer cannot sign with key signer"
verify_sig ecdsa-sha256 "$T/signer.pem" "$T/msg" "$T/sig" >/dev/null || fail "signer's signature"
# list shows only the client's own keys, with the ops it may do on each.
as_user 40003 $NOGROUP "$KEYDCTL" list > "$T/list"
[[ $(awk 'NR > 1 { print $1 ":" $4 }' "$T/list" | sort | tr '\n' ' ') == "enc:decrypt signer:sign " ]] ||
  fail "list as client signer: $(cat "$T/list")"
pass "op and key checks"

# 5. A gid match through a supplementary group (primary group unrelated).
as_user 40005 40005,$NOGROUP,40100 "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg" > "$T/sig" ||
  fail "client grp (supplementary gid 40100) cannot sign"
verify_sig ecdsa-sha256 "$T/signer.pem" "$T/msg" "$T/sig" >/dev/null || fail "grp's signature"
expect_error "keydctl: sign other: permission denied by policy: client 'grp' may not use key 'other'" \
  as_user 40005 40005,$NOGROUP,40100 "$KEYDCTL" sign other -a ecdsa-sha256 -i "$T/msg"
# ...and through the primary group.
as_user 40006 40101,$NOGROUP "$KEYDCTL" sign other -a ecdsa-sha256 -i "$T/msg" > /dev/null ||
  fail "client grp2 (primary gid 40101) cannot sign"
line=$(grep '"op":"sign","key":"other"' "$T/audit.jsonl" | grep '"result":"ok"' | tail -1)
[[ $(json_field "$line" client) == grp2 && $(json_field "$line" uid) == 40006 &&
   $(json_field "$line" gid) == 40101 ]] || fail "audit of grp2's signature: $line"
pass "gid match"

# 6. Groups of two clients and no uid: ambiguous, closed, audited as such.
as_user 40007 40007,$NOGROUP,40100,40101 "$KD_RAW" "$SOCK" denied ||
  fail "a peer in groups of two clients was served"
wait_for "$T/audit.jsonl" "the peer's groups match more than one client"
# A uid match wins over the groups.
as_user 40003 40003,$NOGROUP,40100,40101 "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg" >/dev/null ||
  fail "uid 40003 with two clients' groups"
pass "ambiguous groups"

# 7. Rate limit 1/m: a bucket of two (a connection's hello and its first
#    request) refilled at one a minute, counted per client across
#    connections (a new keydctl each time). hello takes a token like any
#    request: the second keydctl is refused at its hello, and so is a
#    hello alone.
as_user 40004 $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg" > "$T/sig" ||
  fail "first request of client slow"
verify_sig ecdsa-sha256 "$T/signer.pem" "$T/msg" "$T/sig" >/dev/null || fail "slow's signature"
expect_error "keydctl: sign signer: rate limit exceeded: client 'slow' is over its rate limit" \
  as_user 40004 $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg"
expect_fail "client 'slow' is over its rate limit" as_user 40004 $NOGROUP "$KD_RAW" "$SOCK" hello
grep -q '"client":"slow".*"result":"rate limit exceeded"' "$T/audit.jsonl" ||
  fail "no rate-limited line in the audit log"
# Other clients are not slowed by it.
as_user 40003 $NOGROUP "$KEYDCTL" sign signer -a ecdsa-sha256 -i "$T/msg" >/dev/null ||
  fail "client signer limited by client slow's rate"
pass "rate limit"

# Every denial above is in the audit log with the client and the reason.
for want in "client 'nosign' may not sign" "key 'enc' is not for sign" \
    "client 'signer' may not use key 'other'"; do
  line=$(grep -m 1 -F "\"detail\":\"$want\"" "$T/audit.jsonl")
  [[ -n $line ]] || fail "no audit line for: $want"
  [[ $(json_field "$line" result) == "permission denied by policy" &&
     $(json_field "$line" error) == -6 && $(json_field "$line" op) == sign ]] ||
    fail "audit line for '$want': $line"
done
# Refusals of one peer (uid, gid) are folded into one line per interval:
# nobody (twice) and the ambiguous peer make two lines, at least.
n=$(grep -c '"event":"denied-peer"' "$T/audit.jsonl")
[[ $n -ge 2 ]] || fail "$n denied-peer lines, want 2 or more"
grep '"event":"denied-peer"' "$T/audit.jsonl" | has '"uid":40007,' ||
  fail "no denied-peer line for the ambiguous peer"
# The daemon is still serving its admin.
"$KD_RAW" "$SOCK" hello
stop_keyd
pass "policy"
