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

# verify_files WANT_STATUS PATTERN FILE...: the rotated files of one log,
# oldest first; PATTERN (a grep regex, "" for none) must be in the output.
# VERIFY_WRAP: a command to run keyd-audit under (prlimit), unquoted.
verify_files() {
  local want=$1 pat=$2 st=0; shift 2
  ${VERIFY_WRAP:-} "$KEYD_AUDIT" verify "$@" --pubkey "${PUBKEY:-$T/audit.pem}" > "$T/v.out" 2>&1 || st=$?
  [[ $st -eq $want ]] || { cat "$T/v.out" >&2; fail "keyd-audit verify $*: status $st, want $want"; }
  [[ -z $pat ]] || grep -q -- "$pat" "$T/v.out" || { cat "$T/v.out" >&2; fail "verify output lacks '$pat'"; }
}
verify() { verify_files "$2" "${3:-}" "$1"; } # verify FILE WANT_STATUS [PATTERN]

# 1. A cleanly stopped log ends with a signed checkpoint and verifies.
start_keyd
for i in $(seq 1 12); do "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null; done
stop_keyd
tail -n 1 "$LOG" | has '"event":"checkpoint"' || fail "the log does not end with a checkpoint"
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
last_cp=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 2 | sed -n 1p | cut -d: -f1)
head -n $((last_cp + 1)) "$LOG" > "$T/bad.jsonl"; verify "$T/bad.jsonl" 3 "unverified tail"
pass "truncation: cut line fails, cut after a checkpoint leaves an unverified tail"

# 6. Rotation: SIGHUP closes the old file with a checkpoint; the new
#    file's first line carries the old file's last hash. Two rotations:
#    audit.2.jsonl (oldest), audit.1.jsonl, audit.jsonl.
hup() {
  kill -HUP "$KEYD_PID"
  for _ in $(seq 1 50); do [[ -s $LOG ]] && break; sleep 0.1; done
  [[ -s $LOG ]] || fail "no new audit log after SIGHUP"
}
start_keyd
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null
mv "$LOG" "$T/audit.2.jsonl"
hup
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null
mv "$LOG" "$T/audit.1.jsonl"
hup
"$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null
stop_keyd
R2=$T/audit.2.jsonl R1=$T/audit.1.jsonl
for f in "$R2" "$R1"; do
  tail -n 1 "$f" | has '"detail":"rotation"' || fail "$f does not end with a rotation checkpoint"
done
verify "$R2" 0
verify "$R1" 0
verify "$LOG" 0
# The links, checked without keyd-audit: first seq and prev of each file.
for pair in "$R2 $R1" "$R1 $LOG"; do
  read -r old new <<< "$pair"
  last=$(tail -n 1 "$old" | tr -d '\n' | sha256sum | cut -d' ' -f1)
  head -n 1 "$new" | has "\"prev\":\"$last\"" || fail "$new does not carry $old's last hash"
  seq_old=$(json_field "$(tail -n 1 "$old")" seq); seq_new=$(json_field "$(head -n 1 "$new")" seq)
  [[ $seq_new -eq $((seq_old + 1)) ]] || fail "$new starts at seq $seq_new after $seq_old"
done
pass "rotation: each file verifies and carries the last hash of the one before"

# 6b. The rotated files verified together, oldest first: one chain.
verify_files 0 "the 3 files chain into one log" "$R2" "$R1" "$LOG"
grep -q "^keyd-audit: $LOG: all [0-9]* lines verified" "$T/v.out" || { cat "$T/v.out" >&2; fail "no verdict on $LOG"; }
# A file left out between them: the break names both files.
verify_files 1 "^keyd-audit: $LOG: line 1 has seq [0-9]* after [0-9]*, the last seq of $R2: lines or a whole file between the two files are missing" "$R2" "$LOG"
# Out of order, or one file twice.
verify_files 1 "^keyd-audit: $R2: line 1 .*the last seq of $R1: .*out of order" "$R1" "$R2" "$LOG"
verify_files 1 "^keyd-audit: $R1: line 1 .*the last seq of $R1: .*given twice" "$R2" "$R1" "$R1" "$LOG"
# A file from another chain: a log started afresh, with seq 0 (the first
# lines of the first keyd's log).
head -n 3 "$R2" > "$T/fresh.jsonl"
[[ $(json_field "$(head -n 1 "$T/fresh.jsonl")" seq) == 0 ]] || fail "$R2 does not start at seq 0"
verify_files 1 "^keyd-audit: $T/fresh.jsonl: line 1 has seq 0 after [0-9]*, the last seq of $R1: a new chain starts here" "$R1" "$T/fresh.jsonl"
# A rotation with nothing written before the next leaves an empty file.
: > "$T/empty.jsonl"
verify_files 0 "$T/empty.jsonl is empty" "$R2" "$R1" "$T/empty.jsonl" "$LOG"
# Split elsewhere than at a rotation: the first part's last lines after its
# own last checkpoint are proven by the second part's checkpoints, and an
# edit to its last line shows only at the link, which names both files.
head -n -1 "$R1" > "$T/part1.jsonl"; { tail -n 1 "$R1"; cat "$LOG"; } > "$T/part2.jsonl"
verify "$T/part1.jsonl" 3 "unverified"
verify_files 0 "and one in a later file" "$R2" "$T/part1.jsonl" "$T/part2.jsonl"
k=$(wc -l < "$T/part1.jsonl")
sed "${k}s/\(\"time\":\"[^\"]*\)\([0-9]\)Z\"/\1X\2Z\"/; ${k}s/X0/1/; ${k}s/X\([1-9]\)/0/" "$T/part1.jsonl" > "$T/part1.bad"
cmp -s "$T/part1.jsonl" "$T/part1.bad" && fail "the last line of part1 was not changed by the test"
verify "$T/part1.bad" 3 "unverified"
verify_files 1 "^keyd-audit: $T/part1.bad: line $k was edited (its hash does not match the prev of line 1 of $T/part2.jsonl)" "$R2" "$T/part1.bad" "$T/part2.jsonl"
# Read as a stream: compressed rotated files through a pipe.
gzip -c "$R2" > "$T/audit.2.jsonl.gz"
verify_files 0 "the 3 files chain into one log" <(gzip -dc "$T/audit.2.jsonl.gz") "$R1" "$LOG"
pass "rotated files verify together; a missing, reordered, foreign or edited link names both files"

# 7. Floods of refusals become one line plus a count.
rm -f "$LOG"
sed -i 's/^ops = sign, status$/ops = status/' "$T/keyd.conf"
start_keyd
t0=$SECONDS
for i in $(seq 1 200); do "$KD_RAW" "$KEYD_SOCKET" sign ec 1 "$(printf '%064d' 0)" -6 >/dev/null; done
took=$((SECONDS - t0))
stop_keyd
# Each flood interval (10 s) writes the first refusal and, at its end, a
# "repeated" line counting the rest: every refusal is accounted for, in
# one pair of lines per interval the 200 took (many under a sanitizer).
first=$(grep '"result":"permission denied by policy"' "$LOG" | grep -vc '"event":"repeated"' || true)
repeats=$(($(grep '"event":"repeated"' "$LOG" | grep -o '"repeated":[0-9]*' | cut -d: -f2 | paste -sd+ -) + 0))
intervals=$((took / 10 + 1))
[[ $((first + repeats)) -eq 200 ]] || fail "200 denials: $first lines and $repeats repeats counted"
[[ $first -le $((intervals + 1)) ]] || fail "200 denials in $took s wrote $first lines"
[[ $took -ge 10 ]] || grep -q '"repeated":199' "$LOG" || fail "no summary line counting 199 repeats"
verify "$LOG" 0
pass "200 denials in $took s: $first lines and a count of $repeats more"

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

# 10. Logs are read a line at a time: memory does not grow with the file.
#     keyd-audit once read a whole file into memory and refused one over
#     1 GiB, which a keyd at 40 requests/s writes in a day. Here a log
#     twice the size of a 32 MiB address-space limit (prlimit --as) verifies
#     under that limit (the old reader failed to allocate it: status 2), and
#     a 64 MiB line is read to its end and named as an error without being
#     kept. The log is made here as keyd writes it (a SHA-256 chain, then a
#     checkpoint signed with ECDSA P-256 over SHA-256), with a key made by
#     openssl: keyd would take minutes to write as many lines.
#     Sanitizer builds reserve terabytes of address space for their shadow
#     memory, so there the logs are verified without the limit, and the log
#     is smaller: json-c's many mallocs under lib.sh's slow unwinder take
#     a minute for the full size.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/big.key" 2>/dev/null
openssl pkey -in "$T/big.key" -pubout -out "$T/big.pem"
CAP=$((32 * 1024 * 1024))
BIG_LINES=170000
if [[ ${KEYD_SANITIZE:-OFF} == ON ]]; then BIG_LINES=20000; fi
perl -MDigest::SHA=sha256_hex -e '
  my $prev = "0" x 64; my $pad = "x" x 100;
  for my $i (0 .. $ARGV[0] - 1) {
    my $l = sprintf(q({"seq":%d,"time":"2026-11-25T04:24:07.%06dZ","event":"request","client":"sbc","uid":115,"gid":120,"pid":2231,"op":"sign","key":"sip-tls","mech":"ecdsa","result":"ok","detail":"%s","latency_us":281,"request_bytes":63,"reply_bytes":80,"prev":"%s"}), $i, $i % 1000000, $pad, $prev);
    print $l, "\n"; $prev = sha256_hex($l);
  }' "$BIG_LINES" > "$T/big.jsonl"
n=$(wc -l < "$T/big.jsonl")
last=$(tail -n 1 "$T/big.jsonl" | tr -d '\n' | sha256sum | cut -d' ' -f1)
cp_msg="{\"seq\":$n,\"time\":\"2026-11-25T04:24:08.000000Z\",\"event\":\"checkpoint\",\"detail\":\"stop\",\"lines\":$n,\"prev\":\"$last\"}"
sig=$(printf '%s' "$cp_msg" | openssl dgst -sha256 -sign "$T/big.key" | base64 -w0)
printf '%s,"sig":"%s"}\n' "${cp_msg%\}}" "$sig" >> "$T/big.jsonl"
size=$(stat -c %s "$T/big.jsonl")
if [[ ${KEYD_SANITIZE:-OFF} == ON ]]; then
  VERIFY_WRAP=
else
  [[ $size -gt $((2 * CAP)) ]] || fail "the generated log ($size bytes) is not larger than twice the limit"
  VERIFY_WRAP="prlimit --as=$CAP"
  # keyd-audit itself (OpenSSL, json-c) fits well under the limit.
  PUBKEY=$T/audit.pem verify "$R2" 0
fi
PUBKEY=$T/big.pem verify "$T/big.jsonl" 0 "all $((n + 1)) lines verified (1 checkpoint)"
# The same log cut in two, through a pipe: the link between them holds.
head -n $((n / 2)) "$T/big.jsonl" > "$T/big.1.jsonl"
PUBKEY=$T/big.pem verify_files 0 "the 2 files chain into one log, seq 0 to $n" "$T/big.1.jsonl" <(tail -n +$((n / 2 + 1)) "$T/big.jsonl")
# A 64 MiB line: an error that names it, not a 64 MiB allocation.
PUBKEY=$T/big.pem verify <({ head -n 2 "$T/big.jsonl"; head -c $((2 * CAP)) /dev/zero | tr '\0' x; echo; tail -n +3 "$T/big.jsonl"; }) 1 "line 3 is not a keyd audit line (longer than 4095 bytes"
PUBKEY=$T/big.pem verify <(head -c $((2 * CAP)) /dev/zero | tr '\0' x) 1 "line 1 is cut off"
rm -f "$T/big.jsonl" "$T/big.1.jsonl"
if [[ -n $VERIFY_WRAP ]]; then
  pass "a $size-byte log verifies under a $CAP-byte address-space limit; a 64 MiB line is named"
else
  pass "a $size-byte log verifies; a 64 MiB line is named (sanitizer build: no address-space limit)"
fi
VERIFY_WRAP=
