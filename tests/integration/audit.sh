#!/usr/bin/env bash
# The audit trail: hash chain, signed checkpoints, keyd-audit verify
# naming the first bad line, rotation, floods, and fail-closed writing on a
# full disk.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
KEYD_AUDIT=$KEYD_BUILD_DIR/keyd/keyd-audit

TOKEN=aud
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
keygen EC:prime256v1 audit 02 --usage-sign
keygen EC:prime256v1 other 03 --usage-sign
export_pub 02 "$T/audit.pem"
export_pub 03 "$T/other.pem"
write_pin
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
audit_checkpoint_lines = 5

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client root]
uid = 0
keys = ec
ops = sign, status
CONF
LOG=$T/audit.jsonl
echo msg > "$T/msg"

verify() { # verify FILE WANT_STATUS [PATTERN]
  local st=0
  "$KEYD_AUDIT" verify "$1" --pubkey "${PUBKEY:-$T/audit.pem}" > "$T/v.out" 2>&1 || st=$?
  [[ $st -eq $2 ]] || { cat "$T/v.out" >&2; fail "keyd-audit verify $1: status $st, want $2"; }
  [[ -z ${3:-} ]] || grep -q -- "$3" "$T/v.out" || { cat "$T/v.out" >&2; fail "verify output lacks '$3'"; }
}

# 1. A cleanly stopped log ends with a signed checkpoint and verifies.
start_keyd
for i in $(seq 1 12); do "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null; done
stop_keyd
tail -n 1 "$LOG" | grep -q '"event":"checkpoint"' || fail "the log does not end with a checkpoint"
[[ $(grep -c '"event":"checkpoint"' "$LOG") -ge 3 ]] || fail "fewer checkpoints than every 5 lines"
grep -q '"prev":"' "$LOG" || fail "no prev hashes"
verify "$LOG" 0 "verified"
pass "clean log verifies ($(wc -l < "$LOG") lines)"

# 2. A wrong public key fails.
PUBKEY=$T/other.pem verify "$LOG" 1 "signature does not verify"
pass "wrong public key fails"

# 3. One byte changed in any line: verify fails and names that line.
n=$(wc -l < "$LOG")
for k in $(seq 1 "$n"); do
  # change one digit of the microseconds in the line's time field
  sed "${k}s/\(\"time\":\"[^\"]*\)\([0-9]\)Z\"/\1X\2Z\"/; ${k}s/X0/1/; ${k}s/X\([1-9]\)/0/" "$LOG" > "$T/bad.jsonl"
  cmp -s "$LOG" "$T/bad.jsonl" && fail "line $k was not changed by the test"
  verify "$T/bad.jsonl" 1 "line $k[: ]"
done
pass "a changed byte in each of the $n lines is named"

# 4. Deleted, duplicated, inserted and reordered lines.
sed '3d' "$LOG" > "$T/bad.jsonl"; verify "$T/bad.jsonl" 1 "line 3[: ]"
sed '3p' "$LOG" > "$T/bad.jsonl"; verify "$T/bad.jsonl" 1 "line 4[: ]"
sed '2r /dev/stdin' "$LOG" > "$T/bad.jsonl" <<< "$(sed -n 2p "$LOG")"; verify "$T/bad.jsonl" 1 "line 3[: ]"
{ sed -n 1p "$LOG"; sed -n 3p "$LOG"; sed -n 2p "$LOG"; sed -n '4,$p' "$LOG"; } > "$T/bad.jsonl"; verify "$T/bad.jsonl" 1 "line 2[: ]"
pass "deleted, duplicated, inserted and reordered lines are named"

# 5. Truncation: mid-line fails; at a line boundary after a checkpoint
#    verifies; beyond it, the lines after the last checkpoint are a tail.
head -c -10 "$LOG" > "$T/bad.jsonl"; verify "$T/bad.jsonl" 1 "cut off"
last_cp=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 2 | head -n 1 | cut -d: -f1)
head -n $((last_cp + 1)) "$LOG" > "$T/bad.jsonl"; verify "$T/bad.jsonl" 3 "unverified tail"
pass "truncation: cut line fails, cut after a checkpoint leaves an unverified tail"

# 6. Rotation: SIGHUP closes the old file with a checkpoint; the new
#    file's first line carries the old file's last hash.
start_keyd
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null
mv "$LOG" "$T/audit.1.jsonl"
kill -HUP "$KEYD_PID"
for _ in $(seq 1 50); do [[ -s $LOG ]] && break; sleep 0.1; done
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null
stop_keyd
tail -n 1 "$T/audit.1.jsonl" | grep -q '"detail":"rotation"' || fail "the old file does not end with a rotation checkpoint"
verify "$T/audit.1.jsonl" 0
last=$(tail -n 1 "$T/audit.1.jsonl" | tr -d '\n' | sha256sum | cut -d' ' -f1)
head -n 1 "$LOG" | grep -q "\"prev\":\"$last\"" || fail "the new file does not carry the old file's last hash"
verify "$LOG" 0
pass "rotation: both files verify and are chained"

# 7. Floods of refusals become one line plus a count.
rm -f "$LOG"
sed -i 's/^ops = sign, status$/ops = status/' "$T/keyd.conf"
start_keyd
for i in $(seq 1 200); do "$KD_RAW" "$KEYD_SOCKET" sign ec 1 "$(printf '%064d' 0)" -6 >/dev/null; done
stop_keyd
denied=$(grep -c '"result":"permission denied by policy"' "$LOG" || true)
[[ $denied -le 3 ]] || fail "200 denials wrote $denied lines"
grep -q '"repeated":199' "$LOG" || fail "no summary line counting 199 repeats"
verify "$LOG" 0
pass "200 denials: $denied lines and a count"

# 8. The audit key cannot be a served key.
sed -i 's/^ops = status$/ops = sign, status/' "$T/keyd.conf"
sed -i "s|^uri = pkcs11:object=ec;type=private|uri = pkcs11:token=$TOKEN;id=%02;type=private|" "$T/keyd.conf"
expect_fail "same token object" "$KEYD" -c "$T/keyd.conf" --check-config
sed -i "s|^uri = pkcs11:token=$TOKEN;id=%02;type=private|uri = pkcs11:object=ec;type=private|" "$T/keyd.conf"
pass "audit key = a served key is refused"

# 9. Full disk: requests are refused with a clear error, then served again
#    once space returns; no line is cut off.
mkdir -p "$T/small"
mount -t tmpfs -o size=64k tmpfs "$T/small"
umount_small() {
  if [[ -n $KEYD_PID ]]; then kill -KILL "$KEYD_PID" 2>/dev/null || true; wait "$KEYD_PID" 2>/dev/null || true; KEYD_PID=; fi
  umount "$T/small" 2>/dev/null || true
}
trap 'umount_small; cleanup' EXIT
sed -i "s|^audit_log = .*|audit_log = $T/small/audit.jsonl|; s|^audit_checkpoint_lines = 5|audit_checkpoint_lines = 1000|" "$T/keyd.conf"
start_keyd
dd if=/dev/zero of="$T/small/fill" bs=1k count=200 2>/dev/null || true
# The log's last page may still have room for a few lines; then every
# request is refused.
first=0
for i in $(seq 1 60); do
  if ! "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null 2>"$T/err"; then first=$i; break; fi
done
[[ $first -gt 0 ]] || fail "with a full disk, 60 requests were all served"
grep -q "audit log" "$T/err" || { cat "$T/err" >&2; fail "the refusal does not name the audit log"; }
for i in $(seq 1 5); do
  if "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null 2>/dev/null; then
    fail "a request was served while the audit log could not be written"
  fi
done
rm -f "$T/small/fill"
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null || fail "not served again once space returned"
stop_keyd
[[ $(tail -c 1 "$T/small/audit.jsonl" | od -An -c | tr -d ' ') == '\n' ]] || fail "a line was cut off"
verify "$T/small/audit.jsonl" 0
umount "$T/small"
pass "full disk: refused while full, served after, no cut line"
